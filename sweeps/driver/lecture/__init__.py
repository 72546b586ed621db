"""`sweep lecture`: the CS231n lecture's claims about training networks, each a study of ordinary
sweep files under examples/lecture/ with a verdict whose rule is written before the run.

study: what a claim, a finding and the lecture's context are; measures: numbers read off a sweep;
studies/: one module per claim (initialization, activations with dead_units, batch_norm,
random_vs_grid, learning_rate, sanity_checks, transfer, coarse_to_fine); html_report: the page;
runner: all of it in turn.
"""

# The studies' keys in the lecture's order (each study's CLAIM.key; a test holds them equal), here
# where `sweep lecture --study` reads them without importing the studies.
STUDY_KEYS = (
    "initialization",
    "activations",
    "batch_norm",
    "random_vs_grid",
    "learning_rate",
    "sanity",
    "transfer",
    "coarse_to_fine",
)
