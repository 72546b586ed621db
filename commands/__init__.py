"""The commands `cli.py` gathers: each parses its arguments, calls one function of the
driver, prints, and chooses the exit status. No training logic and no tracking here."""
