"""The sweep file's schema: plain values in sections, each default written once."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    Tag,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from sweeps.credentials import CREDENTIALS_HINT, has_credentials
from sweeps.driver.cluster.storage import storage_path_problem
from sweeps.driver.sweep_file.fields import ParamSpec, keyword_or_number, registry_names
from sweeps.epoch_report import EPOCH_METRICS
from sweeps.trial.augmentation import AUGMENTATIONS
from sweeps.trial.data import DATASETS
from sweeps.trial.preprocessing import PREPROCESSORS

# Field types built from the registries at import, so a new data set, preprocessing, augmentation
# or metric is one registry line. A type checker cannot run that code: it sees the plain types.
if TYPE_CHECKING:
    DatasetName: TypeAlias = str
    PreprocessName: TypeAlias = str
    AugmentName: TypeAlias = str
    MetricName: TypeAlias = str
    FuseSetting: TypeAlias = str | int
    GpuShare: TypeAlias = str | int | float
else:
    DatasetName = registry_names(DATASETS)
    PreprocessName = registry_names(PREPROCESSORS)
    AugmentName = registry_names(AUGMENTATIONS)
    MetricName = Literal[EPOCH_METRICS]
    FuseSetting = keyword_or_number(("off", "auto"), minimum=1, whole=True)
    GpuShare = keyword_or_number(("auto",), minimum=0, whole=False)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SyntheticConfig(_Section):
    num_examples: PositiveInt = 512
    num_classes: int = Field(4, ge=2)
    shape: list[PositiveInt] = Field(
        default_factory=lambda: [3, 32, 32], min_length=3, max_length=3
    )


class NormalizationConfig(_Section):
    """A per-channel mean and std in [0, 1] units (one value serves every channel)."""

    mean: list[float] = Field(min_length=1)
    std: list[PositiveFloat] = Field(min_length=1)


class DataConfig(_Section):
    dataset: DatasetName = "digits"
    root: str | None = None  # the folder holding mnist, fashion_mnist, cifar10 or image_folder data
    download: bool = False  # let torchvision fetch mnist/fashion_mnist/cifar10 into root
    val_fraction: float = Field(0.2, gt=0, lt=1)
    # Unset, model.arch: pretrained with weights means backbone
    # (SweepConfig._preprocess_for_the_backbone).
    preprocess: PreprocessName = Field(
        "per_channel_mean",
        description="per_channel_mean, or backbone for model.arch: pretrained with weights",
    )
    # What `backbone` applies when the weights do not say (a state_dict file); stated, it wins over
    # named weights'.
    normalization: NormalizationConfig | None = None
    # each training batch, on the trial's device, seeded per trial
    augment: AugmentName = "none"
    # keep a deterministic subset (split first, by search.seed)
    max_examples: PositiveInt | None = None
    # keep only these classes, relabelled 0, 1, ... in this order (e.g. pretrain on some, fine-tune
    # on the others)
    classes: list[NonNegativeInt] | None = Field(None, min_length=2)
    image_size: PositiveInt = 64  # image_folder images are resized to image_size x image_size
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig)


class MlpConfig(_Section):
    arch: Literal["mlp"] = "mlp"
    hidden: list[PositiveInt] = Field(default_factory=lambda: [128, 128, 128], min_length=1)


class CnnConfig(_Section):
    arch: Literal["cnn"] = "cnn"
    channels: list[PositiveInt] = Field(default_factory=lambda: [32, 64], min_length=1)
    # The last feature map is average-pooled to at most head_pool x head_pool for the linear head
    # (1: global average pooling, which throws away where features are: see models/cnn.py).
    head_pool: PositiveInt = 4


class ResnetConfig(_Section):
    arch: Literal["resnet"] = "resnet"
    widths: list[PositiveInt] = Field(default_factory=lambda: [16, 32, 64], min_length=1)
    blocks_per_stage: PositiveInt = 1


class PretrainedConfig(_Section):
    arch: Literal["pretrained"] = "pretrained"
    backbone: str = "resnet18"  # a torchvision classification model name
    # a state_dict file, or a torchvision weights name the machine has cached
    weights: str | None = None
    min_input_size: PositiveInt = 32  # smaller inputs are resized up to this
    # The frozen blocks' output computed once per sweep where it can be (the rules:
    # sweeps/driver/planning/feature_cache.py)
    cache_features: bool = True


MODEL_CONFIGS = {
    config.model_fields["arch"].default: config
    for config in (MlpConfig, CnnConfig, ResnetConfig, PretrainedConfig)
}


def wants_backbone_preprocess(model: ModelConfig) -> bool:
    """A pretrained backbone expects the inputs it was trained on, not the new data's statistics:
    `data.preprocess` left unset means `backbone` for it."""
    return isinstance(model, PretrainedConfig) and model.weights is not None


def architecture_of(value: Any) -> str:
    return value.get("arch", "mlp") if isinstance(value, dict) else getattr(value, "arch", "mlp")


if TYPE_CHECKING:
    ModelConfig = MlpConfig | CnnConfig | ResnetConfig | PretrainedConfig
else:
    # A Union over the registry, built at import: `|` cannot take a generated sequence of types.
    ModelConfig = Annotated[
        Union[tuple(Annotated[config, Tag(arch)] for arch, config in MODEL_CONFIGS.items())],  # noqa: UP007
        Discriminator(architecture_of),
    ]


class TrainConfig(_Section):
    epochs: PositiveInt = 20
    optimizer: Literal["sgd", "adam"] = "sgd"
    checkpoint_every: PositiveInt = 1  # epochs between checkpoints (the last epoch always gets one)
    # ...and at least this many seconds between them (0: no minimum): saving after every
    # short epoch costs a sweep more than it saves (bench/RESULTS.md); a retry redoes about
    # this much (or checkpoint_every epochs, if they take longer).
    checkpoint_min_interval_s: float = Field(10, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: CUDA when Ray gave the trial a GPU
    precision: Literal["fp32", "bf16"] = "fp32"  # bf16: autocast the forward pass
    # Trials that share a batch size and maxout-or-not train as one batched model, in groups
    # of up to N (off: one trial at a time; auto: sweeps.driver.planning.fusion's rule; README:
    # fused trials).
    fuse: FuseSetting = "auto"


class SearchConfig(_Section):
    num_samples: PositiveInt = 16
    max_concurrent: PositiveInt = 2
    seed: int = Field(0, ge=0, le=2**32 - 1)  # numpy's seeds are 32-bit
    metric: MetricName = "val_acc"
    mode: Literal["max", "min"] = "max"
    # restarts of a trial whose worker died, each from its last checkpoint
    max_failures: int = Field(2, ge=0)


class EarlyStoppingConfig(_Section):
    scheduler: Literal["asha", "none"] = "asha"
    # Ray Tune's own defaults (and the ASHA paper's eta = 4): on the benchmark's digits sweep,
    # a third of the epochs for a best val_acc within 0.3 points (bench/RESULTS.md).
    grace_period: PositiveInt = 1
    reduction_factor: float = Field(4, gt=1)


class ResourcesConfig(_Section):
    cpus_per_trial: float = Field(1, gt=0)
    # auto: a share measured by a short probe of one group on one GPU
    # (sweeps.driver.planning.gpu_share); 0 without GPUs
    gpus_per_trial: GpuShare = 0


class UpdateRatioBand(_Section):
    low: float = Field(1.0e-4, gt=0)
    high: float = Field(1.0e-2, gt=0)
    patience: PositiveInt = 3
    # No alert in the first warmup_steps optimizer steps, nor in the first epoch: the ratio
    # spikes while every healthy trial starts (both top trials of a Fashion-MNIST sweep alerted
    # at step 60 without it); the ratios are logged all the same.
    warmup_steps: int = Field(100, ge=0)


class DiagnosticsConfig(_Section):
    enabled: bool = True
    every_n_steps: PositiveInt = 20
    # Activation statistics after each epoch that passes a multiple of this many optimizer
    # steps (1: after every epoch); always at initialization and after any epoch a trial
    # can end at.
    activations_every_n_steps: PositiveInt = 50
    update_ratio: UpdateRatioBand = Field(default_factory=UpdateRatioBand)
    alert_webhook: str | None = Field(None, pattern=r"^https?://")
    # Link-local and cloud-metadata addresses are refused unless this says the user means it.
    alert_webhook_allow_private: bool = False
    stop_on: Literal["too_high", "too_low", "any"] | None = None


class MlflowConfig(_Section):
    tracking_uri: str | None = None
    # MLflow keeps experiment names up to 500 characters; one line a person can read.
    experiment: str | None = Field(
        None, min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$"
    )
    # At the end, how long the sweep keeps trying a store that does not answer before it leaves
    # the writes in the spool for `sweep sync` (0: at once; a batch job may not want to wait).
    patience_s: float = Field(30, ge=0, le=3600)

    @field_validator("tracking_uri")
    @classmethod
    def _no_credentials(cls, uri: str | None) -> str | None:
        # A sweep file is copied into MLflow, the experiment folder and ConfigMaps.
        if uri and has_credentials(uri):
            # Its own error type: the message must not echo the URI, which holds the secret.
            raise PydanticCustomError("credentials_in_uri", CREDENTIALS_HINT)
        return uri


class StorageConfig(_Section):
    # a local path, a shared filesystem, or s3:// gs:// ...
    path: str = Field("./sweep-results", min_length=1)
    shared: bool = False  # the local path is on storage every node of the cluster mounts (NFS, ...)

    @field_validator("path")
    @classmethod
    def _known_filesystem(cls, path: str) -> str:
        if (why := storage_path_problem(path)) is not None:
            raise PydanticCustomError("storage_path", why)
        return path


class SweepConfig(_Section):
    """A whole sweep file. Every section has defaults; `name` and `params` are required."""

    # A folder name (with a timestamp added), an MLflow experiment and run name, a Kubernetes label.
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=MlpConfig)
    params: dict[str, ParamSpec]
    train: TrainConfig = Field(default_factory=TrainConfig)
    search: SearchConfig = Field(default_factory=SearchConfig)
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    diagnostics: DiagnosticsConfig = Field(default_factory=DiagnosticsConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    # the MLflow run id of the sweep this one narrows (set by `sweep refine`)
    refines: str | None = None

    @model_validator(mode="after")
    def _preprocess_for_the_backbone(self) -> SweepConfig:
        if "preprocess" not in self.data.model_fields_set and wants_backbone_preprocess(self.model):
            self.data.preprocess = "backbone"
        return self

    @property
    def experiment_name(self) -> str:
        return self.mlflow.experiment or self.name


def json_schema() -> dict[str, Any]:
    """The sweep file's JSON Schema (what `sweep schema` prints and editors use)."""
    schema = SweepConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "sweep file"
    return schema
