"""The sweep's own record beside Tune's experiment: the journal, the MLflow spool, and the lock one
driver holds."""
