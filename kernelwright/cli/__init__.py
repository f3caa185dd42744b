"""The command line (typer): app.py holds the commands, render.py what they print."""
