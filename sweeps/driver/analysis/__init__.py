"""Reading a sweep back: the report, importance, plots, and the refined sweep file (coarse to
fine)."""
