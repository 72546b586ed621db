"""The driver side: what runs once, in the `sweep` process (never in a trial, and never importing
torch)."""
