"""Suites of problems: runner.py optimises or evaluates each, records.py keeps the records and
the field's metrics, report.py writes them out, compare.py runs several configurations."""
