"""A sweep read back from its MLflow store: for `sweep report`, `refine` and the end-of-run
summary."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sweeps.driver.tracking.store import quiet_mlflow

if TYPE_CHECKING:
    from mlflow.entities import Run


class SweepReader:
    """Read-only access to the sweeps in one tracking store (and the report's files, written
    back)."""

    def __init__(self, tracking_uri: str) -> None:
        from mlflow.tracking import MlflowClient

        quiet_mlflow()
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri)

    def find_sweep_run(self, experiment_or_run: str) -> Run:
        """A sweep's parent run: by its run id, or the newest sweep in the experiment of that
        name."""
        from mlflow.exceptions import MlflowException
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        experiment = self.client.get_experiment_by_name(experiment_or_run)
        if experiment is None:
            try:
                run = self.client.get_run(experiment_or_run)
            except MlflowException:
                raise LookupError(
                    "no MLflow experiment or run named "
                    f"{experiment_or_run!r}{self._did_you_mean(experiment_or_run)}"
                ) from None
            if MLFLOW_PARENT_RUN_ID in run.data.tags:
                raise LookupError(
                    f"run {experiment_or_run} is a trial; give its sweep's run id or experiment "
                    "name"
                )
            return run
        parents = self.client.search_runs(
            [experiment.experiment_id],
            filter_string="tags.`sweep.role` = 'parent'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if not parents:
            raise LookupError(f"experiment {experiment_or_run!r} holds no sweep run")
        return parents[0]

    def _did_you_mean(self, name: str) -> str:
        import difflib

        names = [experiment.name for experiment in self.client.search_experiments(max_results=1000)]
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
        if close:
            return f" (did you mean {close[0]!r}?)"
        return (
            f"; the store holds {', '.join(repr(name) for name in sorted(names)[:10])}"
            if names
            else "; the store holds no experiment"
        )

    def trial_runs(self, parent: Run) -> list[Run]:
        """The trial runs nested under a sweep's parent run."""
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

        return self.client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent.info.run_id}'",
            max_results=50000,
        )

    def metric_history(self, run_id: str, key: str) -> list[tuple[int, float]]:
        return [
            (metric.step, metric.value) for metric in self.client.get_metric_history(run_id, key)
        ]

    def sweep_file(self, parent_run_id: str, name: str = "search.yaml") -> str | None:
        """A sweep file logged with the sweep's parent run: the resolved one (search.yaml) or the
        user's own (USER_SWEEP_FILE); None if the run has no such file."""
        import mlflow.artifacts

        if name not in {item.path for item in self.client.list_artifacts(parent_run_id)}:
            return None
        return mlflow.artifacts.load_text(
            f"{self.client.get_run(parent_run_id).info.artifact_uri}/{name}"
        )

    def log_report_files(self, parent_run_id: str, paths: list[str]) -> None:
        for path in paths:
            self.client.log_artifact(parent_run_id, path, "report")
