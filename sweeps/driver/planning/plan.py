"""The plan: a validated sweep file turned into what a run needs.

The data to load, the settings every trial shares, the early-stopping rule, the
epochs a trial may end at, and the parent run's params, each derived here and only
here. Defaults live in the sweep file's schema (sweeps/driver/sweep_file/schema.py); nothing
below restates one. Plain values: no torch, no Ray, no MLflow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweeps.driver.planning.fusion import FusionPlan, plan_fusion
from sweeps.driver.sweep_file.reading import dump_sweep
from sweeps.driver.sweep_file.schema import PretrainedConfig, SweepConfig
from sweeps.trial.data import DataError, DataSpec, SplitData, load_split
from sweeps.trial.preprocessing import Normalization
from sweeps.trial_settings import DiagnosticsSettings, TrialSettings


@dataclass(frozen=True)
class AshaSettings:
    """ASHA's knobs, in epochs (Tune's training_iteration: one report per epoch)."""

    max_t: int
    grace_period: int
    reduction_factor: float


@dataclass(frozen=True)
class SweepPlan:
    config: SweepConfig
    trial_settings: TrialSettings
    asha: AshaSettings | None  # None: every trial trains every epoch
    end_epochs: list[int]  # the epochs after which a trial may end
    parent_params: dict[str, Any]  # every setting as a dotted key, for the parent run
    sweep_yaml: str  # the resolved sweep file, without the tracking URI (it may hold credentials)
    fusion: FusionPlan | None  # None: every trial trains on its own
    fusion_note: str  # one line: fused or not, and why


def plan_sweep(config: SweepConfig) -> SweepPlan:
    fusion, fusion_note = plan_fusion(config)
    return SweepPlan(
        config=config,
        trial_settings=build_trial_settings(config),
        asha=asha_settings(config),
        end_epochs=epochs_a_trial_may_end(config),
        parent_params=parent_run_params(config),
        sweep_yaml=sweep_file_without_tracking_uri(config),
        fusion=fusion,
        fusion_note=fusion_note,
    )


def data_spec(config: SweepConfig) -> DataSpec:
    data = config.data
    return DataSpec(
        dataset=data.dataset,
        root=data.root,
        download=data.download,
        image_size=data.image_size,
        num_examples=data.synthetic.num_examples,
        num_classes=data.synthetic.num_classes,
        shape=(data.synthetic.shape[0], data.synthetic.shape[1], data.synthetic.shape[2]),
    )


def load_sweep_data(config: SweepConfig) -> SplitData:
    """The sweep's data set, loaded and split once (DataError names the field when it cannot be)."""
    data = config.data
    return load_split(
        data_spec(config),
        val_fraction=data.val_fraction,
        preprocess=data.preprocess,
        seed=config.search.seed,
        max_examples=data.max_examples,
        normalization=backbone_normalization(config),
        classes=data.classes,
    )


def backbone_normalization(config: SweepConfig) -> Normalization | None:
    """What `data.preprocess: backbone` applies: the file's data.normalization, else the named
    weights' own, read from torchvision's weights metadata (imports torchvision; downloads
    nothing)."""
    if config.data.preprocess != "backbone":
        return None
    stated = config.data.normalization
    if stated is not None:
        return Normalization(tuple(stated.mean), tuple(stated.std))
    from models.backbone_weights import WeightsError, weights_normalization

    model = config.model
    # `backbone` is refused at validation but for pretrained weights (sweep_file/checks.py).
    assert isinstance(model, PretrainedConfig) and model.weights is not None
    try:
        return Normalization(*weights_normalization(model.backbone, model.weights))
    except WeightsError as error:
        raise DataError(error.field, str(error)) from None


def build_trial_settings(config: SweepConfig) -> TrialSettings:
    diagnostics = config.diagnostics
    return TrialSettings(
        arch=config.model.arch,
        model_options=model_options(config),
        epochs=config.train.epochs,
        optimizer=config.train.optimizer,
        threads=max(1, int(config.resources.cpus_per_trial)),
        seed=config.search.seed,
        checkpoint_every=config.train.checkpoint_every,
        checkpoint_min_interval_s=config.train.checkpoint_min_interval_s,
        device=config.train.device,
        precision=config.train.precision,
        diagnostics=DiagnosticsSettings(
            enabled=diagnostics.enabled,
            every_n_steps=diagnostics.every_n_steps,
            activations_every_n_steps=diagnostics.activations_every_n_steps,
            low=diagnostics.update_ratio.low,
            high=diagnostics.update_ratio.high,
            patience=diagnostics.update_ratio.patience,
            warmup_steps=diagnostics.update_ratio.warmup_steps,
            stop_on=diagnostics.stop_on,
            histogram_epochs=frozenset(epochs_a_trial_may_end(config)),
        ),
        augment=config.data.augment,
    )


def model_options(config: SweepConfig) -> dict[str, Any]:
    """The architecture's own settings. A `model.weights` file named relative to where
    `sweep run` runs is made absolute: Ray Tune starts each trial in a folder of its own."""
    # the driver's, not the model's
    options = config.model.model_dump(exclude={"arch", "cache_features"})
    weights = options.get("weights")
    if (
        weights
        and not Path(weights).expanduser().is_absolute()
        and Path(weights).expanduser().is_file()
    ):
        options["weights"] = str(Path(weights).expanduser().resolve())
    return options


def asha_settings(config: SweepConfig) -> AshaSettings | None:
    if config.early_stopping.scheduler == "none":
        return None
    return AshaSettings(
        max_t=config.train.epochs,
        grace_period=config.early_stopping.grace_period,
        reduction_factor=config.early_stopping.reduction_factor,
    )


def epochs_a_trial_may_end(config: SweepConfig) -> list[int]:
    """The last epoch, and with ASHA each rung (grace_period * reduction_factor^k) where it may stop
    a trial."""
    stopping = config.early_stopping
    if stopping.scheduler != "asha":
        return [config.train.epochs]
    return asha_rungs(
        epochs=config.train.epochs,
        grace_period=stopping.grace_period,
        reduction_factor=stopping.reduction_factor,
    )


def asha_rungs(*, epochs: int, grace_period: int, reduction_factor: float) -> list[int]:
    """The epochs at which ASHA compares trials (grace_period * reduction_factor^k), and the
    last."""
    found = [epochs]
    rung: float = grace_period
    while rung < epochs:
        found.append(math.ceil(rung))  # Tune decides at the first report at or past a rung
        rung *= reduction_factor
    return sorted(set(found))


def parent_run_params(config: SweepConfig) -> dict[str, Any]:
    """The parent run's params: every setting as a dotted key, distributions as written."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict) and not (prefix.startswith("params.") and len(value) == 1):
            for key, child in value.items():
                walk(f"{prefix}.{key}" if prefix else key, child)
        else:
            flat[prefix] = value

    walk("", config.model_dump(mode="json", exclude={"mlflow": {"tracking_uri"}}))
    return flat


def sweep_file_without_tracking_uri(config: SweepConfig) -> str:
    """The sweep file as MLflow and the journal keep it: the URI lives in the journal alone,
    and the file reads the same wherever it is tracked."""
    return dump_sweep(
        config.model_copy(
            update={"mlflow": config.mlflow.model_copy(update={"tracking_uri": None})}
        )
    )
