"""Every MLflow call sweep makes; no module outside this package imports mlflow.

store: which tracking store (one rule for every command) and whether it answers.
sweep_run: the sweep's parent run, opened and closed.
writer: the queue of MLflow writes, retried and spooled through outages.
batching: writes merged into calls within MLflow's limits.
trial_logger: the Tune callback with a child run per trial (the only module here that imports Ray).
queries: a finished sweep read back, for `report`, `refine` and the end-of-run summary.

Submodules are imported by name: reading a sweep (`sweep report`) must not import Ray.
"""
