"""The typed configuration schema: sections, keys, defaults and allowed values.

The allowed words (kinds, directions, merge modes, tasks...) come from
:mod:`~bilstm_cli.config.vocabulary`, which the Click options and variant names share.
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from .vocabulary import (
    Backend,
    Cell,
    Direction,
    Executor,
    Kind,
    Merge,
    Metric,
    Optimizer,
    Pooling,
    SaveModels,
    Schedule,
    TaskSetting,
)

# Refuse sizes that could only come from a typo before anything is allocated.
MAX_TIMESTEPS = 1_000_000
MAX_SAMPLES = 100_000_000
MAX_SEED = 2**32 - 1
DEVICE_PATTERN = r"^(auto|cpu|gpu(:\d+)?)$"


_SIZE_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "kib": 2**10, "m": 10**6, "mb": 10**6, "mib": 2**20}
_SIZE_UNITS |= {"g": 10**9, "gb": 10**9, "gib": 2**30, "t": 10**12, "tb": 10**12, "tib": 2**40}


def parse_size(text: str) -> int:
    """``"2GB"``, ``"512MiB"``, ``"1.5g"`` or ``"1000000"`` in bytes (ValueError otherwise)."""
    import re

    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", text)
    unit = match.group(2).lower() if match else None
    if unit not in _SIZE_UNITS:
        raise ValueError(f"{text!r} is not a size; write bytes or e.g. 2GB, 512MiB")
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class StdinData(Section):
    """Training data that came from standard input (``train --data -``): config.yaml records
    its fingerprint instead of a path, so a re-run asks for the data and can check it."""

    sequences: int = Field(ge=0, description="number of sequences")
    steps: int = Field(ge=0, description="number of real (unpadded) steps")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="of the parsed features, lengths, labels, class names")


class DataConfig(Section):
    """Where sequences come from: the generated cumulative-sum task or files."""

    task: TaskSetting = Field(
        "auto",
        description="per-step labels, one label per sequence, or auto: read from the labels (generated: per-step)",
    )
    timesteps: int = Field(10, ge=1, le=MAX_TIMESTEPS, description="steps per generated sequence")
    threshold: float = Field(0.25, gt=0, le=1, description="label limit as a fraction of timesteps")
    samples_per_epoch: int = Field(32, ge=1, le=MAX_SAMPLES, description="fresh sequences per epoch")
    validation_size: int = Field(1000, ge=0, le=MAX_SAMPLES, description="held-out fresh sequences")
    seed: Optional[int] = Field(None, ge=0, le=MAX_SEED, description="training stream seed (default: train.seed)")
    validation_seed: int = Field(2017, ge=0, le=MAX_SEED, description="seed of the fixed validation set")
    train_path: Optional[str] = Field(None, description="dataset file; null = generate the task")
    val_path: Optional[str] = Field(None, description="validation dataset file")
    test_path: Optional[str] = Field(None, description="test dataset file: final scores on it")
    validation_split: float = Field(0.0, ge=0, lt=1, description="stratified hold-out fraction of train_path")
    standardize: bool = Field(False, description="per-feature standardisation fitted on training data")
    memory_limit: Optional[int] = Field(
        None,
        gt=0,
        description="bytes (or e.g. 2GB, 512MiB) a file may take in memory; larger files are streamed "
        "in chunks. null = an eighth of the machine's memory",
    )

    @field_validator("memory_limit", mode="before")
    @classmethod
    def _size_in_bytes(cls, value: Any) -> Any:
        return parse_size(value) if isinstance(value, str) else value

    @property
    def memory_budget(self) -> int:
        """``memory_limit`` in bytes, or its default."""
        from ..limits import default_memory_limit

        return self.memory_limit if self.memory_limit is not None else default_memory_limit()

    @property
    def generated_task(self) -> str:
        """The label kind the generator draws (``auto`` means the tutorial's, per step)."""
        return "per-step" if self.task == "auto" else self.task

    @property
    def file_task(self) -> str | None:
        """The label kind files must hold: None (``auto``) accepts what the file holds."""
        return None if self.task == "auto" else self.task

    stdin: Optional[StdinData] = Field(None, description="recorded by train: the training data came from stdin")


class ModelSettings(Section):
    """The network: a (stacked) recurrent layer, one direction or both (Bidirectional), with a
    per-step or pooled head."""

    kind: Kind = "bilstm"
    cell: Cell = Field("lstm", description="recurrent cell: Keras LSTM, GRU or SimpleRNN")
    direction: Optional[Direction] = Field(None, description="lstm only; default forward")
    merge: Optional[Merge] = Field(None, description="bilstm only; default concat")
    units: int = Field(20, ge=1, le=4096)
    layers: int = Field(1, ge=1, le=16)
    dropout: float = Field(0.0, ge=0, lt=1)
    pooling: Pooling = Field("last", description="sequence task: final states or masked mean")

    @model_validator(mode="after")
    def _check_combination(self) -> ModelSettings:
        if self.kind == "lstm":
            if self.merge is not None:
                raise ValueError(
                    f"model.merge={self.merge} only applies to kind bilstm; remove model.merge or set model.kind=bilstm"
                )
            if self.direction is None:
                self.direction = "forward"
        else:
            if self.direction is not None:
                raise ValueError(
                    f"model.direction={self.direction} only applies to kind lstm "
                    "(a BiLSTM runs both directions); remove model.direction or set model.kind=lstm"
                )
            if self.merge is None:
                self.merge = "concat"
        return self


class EarlyStopping(Section):
    enabled: bool = False
    patience: int = Field(10, ge=1, description="epochs without val_loss improvement before stopping")
    min_delta: float = Field(0.0, ge=0)
    start_from: int = Field(
        0, ge=0, description="no stopping before this epoch (the best epoch is tracked from the first)"
    )


class Refit(Section):
    enabled: bool = Field(
        False,
        description="after early stopping on the validation split, train again from the start on all "
        "training sequences for the chosen number of epochs; that model is the run's",
    )
    scale: float = Field(
        1.0, gt=0, le=10, description="refit epochs = best epoch x scale (rounded, at least min_epochs)"
    )
    min_epochs: int = Field(1, ge=1, description="the fewest epochs a refit trains")


class TrainConfig(Section):
    epochs: int = Field(3000, ge=1, le=100_000_000)
    batch_size: int = Field(32, ge=1, le=1_000_000)
    optimizer: Optimizer = "adam"
    # 0.003 rather than Adam's 0.001: the default 3000 mini-batches then reach >= 0.993
    # validation accuracy for every seed tried (0.001 gave 0.985 for one of three)
    learning_rate: float = Field(0.003, gt=0)
    weight_decay: Optional[float] = Field(
        None, ge=0, description="adamw only: decoupled weight decay; null = Keras' AdamW default, 0.004"
    )
    clipnorm: Optional[float] = Field(None, gt=0, description="clip each weight's gradient to this norm; null = off")
    schedule: Schedule = Field(
        "constant", description="learning rate: constant, cosine decay over the run, or lowered on a plateau"
    )
    cosine_alpha: float = Field(0.0, ge=0, le=1, description="cosine: final learning rate as a fraction of the first")
    plateau_patience: int = Field(
        5, ge=1, description="plateau: epochs without val_loss improvement before the rate is lowered"
    )
    plateau_factor: float = Field(0.5, gt=0, lt=1, description="plateau: the rate is multiplied by this")
    seed: Optional[int] = Field(None, ge=0, le=MAX_SEED, description="null = drawn at random and recorded")
    backend: Optional[Backend] = Field(
        None, description="Keras backend: tensorflow or jax; null = $BILSTM_BACKEND, else tensorflow"
    )
    device: str = Field("auto", pattern=DEVICE_PATTERN, description="auto, cpu, gpu or gpu:N")
    devices: int = Field(
        1, ge=1, le=1024, description="data-parallel over the first N devices of the device's kind; batch split evenly"
    )
    log_every: Optional[int] = Field(None, ge=1, description="epochs per logged row; null = about 20 rows")
    jit_compile: Union[bool, Literal["auto"]] = Field(
        "auto",
        description=(
            "XLA for TensorFlow's training loop (evaluation follows it); auto = on for loops over 32 steps "
            "without sequence outputs, long single runs, and stacked copies' evaluation on a CPU"
        ),
    )
    early_stopping: EarlyStopping = Field(default_factory=EarlyStopping)
    refit: Refit = Field(default_factory=Refit)
    folds: int = Field(
        0,
        ge=0,
        le=20,
        description="k-fold ensemble (training file, no validation file): k models trained as one program, "
        "each on all but one stratified fold and early-stopped on that fold; the saved model averages "
        "their probabilities; 0 = off",
    )
    class_weight: Union[None, Literal["balanced"], dict[str, float]] = None
    checkpoint_every: Optional[int] = Field(
        None, ge=1, description="epochs between checkpoints; null = at logged rows, at most every 30 s"
    )

    @model_validator(mode="after")
    def _check_folds(self) -> TrainConfig:
        if self.folds == 1:
            raise ValueError("train.folds=1 is not a k-fold ensemble; use 0 (off) or 2 or more")
        if self.folds and self.refit.enabled:
            raise ValueError(
                "train.folds and train.refit are two ways to use every training sequence; "
                "choose one (--set train.refit.enabled=false or --set train.folds=0)"
            )
        return self

    @model_validator(mode="after")
    def _check_optimizer(self) -> TrainConfig:
        if self.weight_decay is not None and self.optimizer != "adamw":
            raise ValueError(
                f"train.weight_decay only applies to train.optimizer=adamw (not {self.optimizer}); "
                "remove train.weight_decay or set train.optimizer=adamw"
            )
        return self

    @field_validator("class_weight", mode="before")
    @classmethod
    def _labels_as_text(cls, value: Any) -> Any:
        # YAML reads {0: 1.0} with integer keys; labels are matched as text
        return {str(k): v for k, v in value.items()} if isinstance(value, dict) else value


class DatasetSpec(Section):
    """One dataset of a comparison: files, or the generator with its own settings."""

    name: str = Field(min_length=1, description="how tables and files call it")
    train: Optional[str] = Field(None, description="training file; null = the generated task")
    val: Optional[str] = Field(None, description="validation file")
    test: Optional[str] = Field(None, description="test file (final scores are test scores)")
    settings: dict[str, Any] = Field(
        default_factory=dict, description="config values for this dataset, e.g. {data.timesteps: 20}"
    )


class CompareConfig(Section):
    variants: Union[list[str], dict[str, Optional[dict[str, Any]]]] = Field(
        default_factory=lambda: ["lstm-forward", "lstm-backward", "bilstm-concat"],
        description="named model variants, or a mapping name -> {key.path: value}",
    )
    grid: dict[str, list[Any]] = Field(
        default_factory=dict, description="{key.path: [values]}: every combination is a variant"
    )
    datasets: list[DatasetSpec] = Field(default_factory=list, description="several datasets; empty = the data section")
    repeats: int = Field(10, ge=1, le=10_000)
    workers: Union[int, Literal["auto"]] = Field(
        "auto", description="worker processes; auto = one per CPU core (never more than there are programs)"
    )
    runs_per_program: int = Field(
        20,
        ge=1,
        le=10_000,
        description="models trained together as one compiled program (fixed by the plan): runs, or a "
        "k-fold ensemble's k members per run",
    )
    executor: Executor = Field("local", description="where runs train: local processes or Ray")
    address: Optional[str] = Field(
        None, description="Ray cluster: null = a private local instance, auto = the running one, or HOST:PORT"
    )
    cpus_per_run: float = Field(1.0, gt=0, le=1024, description="Ray: CPUs each job reserves (fractions allowed)")
    gpus_per_run: float = Field(0.0, ge=0, le=64, description="Ray: GPUs each job reserves (0: trains on CPU)")
    metric: Metric = Field("loss", description="final score that ranks variants")
    accuracy_threshold: float = Field(0.9, gt=0, le=1, description="for epochs-to-threshold")
    save_models: SaveModels = Field(
        "none",
        description="keep trained models as run directories under models/: none, best (the best repeat "
        "of each variant and dataset) or all",
    )

    @field_validator("grid")
    @classmethod
    def _grid_values(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in grid.items():
            if not values:
                raise ValueError(f"compare.grid.{key} is empty; give at least one value")
        return grid


class TuneConfig(Section):
    """``bilstm tune``: the search space, the budget, and the confirmation of the finalists."""

    space: dict[str, str] = Field(
        default_factory=dict,
        description="{key.path: spec}: int:LOW:HIGH[:log], float:LOW:HIGH[:log] or choice:A,B,...",
    )
    trials: Optional[int] = Field(20, ge=1, le=100_000, description="finished trials to reach; null = until timeout")
    timeout: Optional[str] = Field(
        None, pattern=r"^\d+(\.\d+)?(s|m|h)?$", description="search time of one invocation: 90s, 10m, 2h"
    )
    sampler: Literal["tpe", "random", "grid"] = Field("tpe", description="grid: every dimension a choice")
    pruner: Literal["median", "halving", "none"] = Field("median", description="stops trials from validation scores")
    startup_trials: int = Field(5, ge=0, le=10_000, description="trials before TPE models and the median pruner prunes")
    metric: Metric = Field("loss", description="the validation score the search optimises")
    top_k: int = Field(3, ge=1, le=100, description="finalists re-run in the confirmation")
    confirm_repeats: int = Field(10, ge=0, le=10_000, description="paired repeats of the confirmation; 0 = none")
    holdout: float = Field(
        0.2, gt=0, lt=1, description="files without a test file: fraction held out for the confirmation"
    )
    storage: Optional[str] = Field(None, description="Optuna storage URL; null = sqlite study.db in the tune dir")
    workers: int = Field(1, ge=1, le=1024, description="trials trained at once, in worker processes when > 1")


class OutputConfig(Section):
    root: str = Field("runs", description="parent folder of run directories")
    name: Optional[str] = Field(None, description="run directory name; null = timestamp + model tag")
    overwrite: bool = Field(False, description="replace an existing run directory")
    tensorboard: bool = Field(True, description="train writes TensorBoard event files to RUN/tensorboard/")


class Config(Section):
    data: DataConfig = Field(default_factory=DataConfig)
    # key paths the user gave (file, --set, flags): defaults such as the dataset recipe fill the rest
    _explicit: frozenset[str] = PrivateAttr(default_factory=frozenset)
    model: ModelSettings = Field(default_factory=ModelSettings)
    train: TrainConfig = Field(default_factory=TrainConfig)
    compare: CompareConfig = Field(default_factory=CompareConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    def __eq__(self, other: object) -> bool:
        # equal settings are equal configs, whichever keys the user happened to spell out
        return isinstance(other, Config) and self.model_dump() == other.model_dump()

    __hash__ = None  # mutable, like every pydantic model

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


ROWS_TO_LOG = 20  # default number of logged rows (and validation points) per run


def default_log_every(epochs: int) -> int:
    """``train.log_every`` when left null: about :data:`ROWS_TO_LOG` rows per run."""
    return max(1, epochs // ROWS_TO_LOG)
