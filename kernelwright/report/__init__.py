"""HTML reports of a run and of a suite: one self-contained file each (Jinja2 templates, charts
as inline SVG from matplotlib, no network), written by `kernelwright report`.

    html.py       the pages: a run's candidate tree, rounds and best kernel; a suite's table
    charts.py     the SVG charts
    templates/    the Jinja2 templates
"""
