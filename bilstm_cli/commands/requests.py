"""What a command was asked to do, as a validated config: flags, ``--config``/``--set`` and the
``--resume`` policy turned into one :class:`~bilstm_cli.config.schema.Config` (and, for compare,
its variants and datasets).

Light on purpose: it imports no backend, so a bad flag, config or resume request fails in a
fraction of a second, before Keras loads (:func:`bilstm_cli.cli.load_command` comes after).
"""

from __future__ import annotations

from typing import Any

from .. import backend
from ..config.overrides import EXPERIMENT_FLAGS, option_name, refuse_with_resume, shared_flags, split_flags
from ..config.schema import Config, DatasetSpec, default_log_every
from ..config.variants import Variant
from ..errors import UsageError
from ..seeds import draw_seed

RAY_OPTIONS = ("address", "cpus_per_run", "gpus_per_run")
# compare options that change the experiment: refused with --resume
COMPARE_EXPERIMENT_OPTIONS = (
    *("variants", "modes", "vary", "data_paths"),
    *("repeats", "epochs", "metric", "seed", "backend"),
)


def resolve(config_file: str | None, assignments: tuple[str, ...], flags: dict[str, Any]) -> Config:
    """The one place every command builds its config (defaults < file < --set < flags)."""
    from ..config.resolve import resolve_config

    values, cleared = split_flags(flags)
    return resolve_config(config_file, assignments, values, cleared)


def train_request(
    config_file: str | None,
    assignments: tuple[str, ...],
    flags: dict[str, Any],
    *,
    data_path: str | None = None,
    val_path: str | None = None,
    log_every: int | None = None,
    out: str | None = None,
    name: str | None = None,
    force: bool = False,
    resume: str | None = None,
    tensorboard: bool | None = None,
) -> Config:
    """The config of a new run, or the saved config of the run ``resume`` continues.

    ``flags`` are the shared model/training flags by name (``merge``, ``epochs``, ``device``...).
    With ``resume``, options that would change the experiment are refused (exit 2).
    """
    _check_not_in_use(resume or out)
    if not resume:
        return resolve(
            config_file,
            assignments,
            {
                **shared_flags(flags),
                "data.train_path": data_path,
                "data.val_path": val_path,
                "train.log_every": log_every,
                "output.name": name,
                "output.overwrite": True if force else None,
                "output.tensorboard": tensorboard,
            },
        )
    from ..runs.directory import load_saved_config

    refuse_with_resume(
        "--resume continues with the run's saved config",
        {
            # --epochs may train a run longer (trained_longer)
            **{option_name(key): flags.get(key) for key in EXPERIMENT_FLAGS if key != "epochs"},
            "--config": config_file,
            "--set": assignments,
            "--val-data": val_path,
            "--log-every": log_every,
            "--out": out,
            "--name": name,
        },
    )
    config = load_saved_config(resume, {"train.device": flags.get("device"), "output.tensorboard": tensorboard})
    # a run trained on stdin data needs that data again (its config records a fingerprint, not a path)
    from_stdin = config.data.stdin is not None
    refuse_with_resume("--resume continues with the run's saved config", {"--data": None if from_stdin else data_path})
    if from_stdin:
        config.data.train_path = data_path
    if flags.get("epochs") is not None:
        config = trained_longer(config, flags["epochs"])
    return config


def trained_longer(config: Config, epochs: int) -> Config:
    """A saved run's config, trained on to ``epochs`` (``train --resume RUN --epochs N``).

    Each epoch's data comes from its own seeded stream (fresh sequences, or a file's shuffle),
    so training a run on from its last checkpoint equals one run of ``epochs`` epochs logged at
    the same interval: the interval is pinned to the run's own. Refused where the planned
    length shapes training itself: a cosine schedule decays over it, and early stopping ends
    a run by its own rule.
    """
    saved = config.train.epochs
    if epochs <= saved:
        raise UsageError(
            f"--epochs {epochs} with --resume: the run is planned for {saved} epochs; --resume --epochs trains "
            "a run longer",
            f"give more than {saved} epochs, or resume without --epochs",
        )
    if config.train.schedule == "cosine":
        raise UsageError(
            "--epochs with --resume: the run's cosine schedule decays over its planned epochs, so training it "
            "longer would not equal one run of that length",
            "start a new run with --epochs N",
        )
    if config.train.early_stopping.enabled:
        raise UsageError(
            "--epochs with --resume: the run uses early stopping, which decides its own length",
            "start a new run with --epochs N (or raise train.epochs there)",
        )
    config.train.log_every = config.train.log_every or default_log_every(saved)
    config.train.epochs = epochs
    return config


def compare_request(
    config_file: str | None,
    assignments: tuple[str, ...],
    options: dict[str, Any],
    resume: str | None = None,
) -> tuple[Config, list[Variant], list[DatasetSpec]]:
    """The config, variants and datasets of a comparison (``options``: compare's options by name).

    Also checks what can be checked before the backend loads: Ray-only options without
    ``--executor ray``, Ray installed and its address reachable, ``train.devices``.
    """
    from ..compare.plan import comparison_datasets
    from ..config.variants import comparison_variants, split_list

    run_time = {
        "compare.workers": options.get("workers"),
        "train.device": options.get("device"),
        "compare.executor": options.get("executor"),
        "compare.save_models": options.get("save_models"),
        **{f"compare.{name}": options.get(name) for name in RAY_OPTIONS},
    }
    _check_not_in_use(resume or options.get("out"))
    if resume:
        from ..runs.directory import load_saved_config

        refuse_with_resume(
            "--resume finishes the saved comparison",
            {
                "--config": config_file,
                "--set": assignments,
                "--out": options.get("out"),
                **{_flag(key): options.get(key) for key in COMPARE_EXPERIMENT_OPTIONS},
            },
        )
        _require_comparison(resume)
        config = load_saved_config(resume, run_time)
    else:
        flags = {
            "compare.repeats": options.get("repeats"),
            "compare.metric": options.get("metric"),
            "train.epochs": options.get("epochs"),
            "train.seed": options.get("seed"),
            "train.backend": options.get("backend"),
            "output.overwrite": True if options.get("force") else None,
        }
        config = resolve(config_file, assignments, {**flags, **run_time})
    ray_only = [option_name(name) for name in RAY_OPTIONS if options.get(name) is not None]
    if ray_only and config.compare.executor != "ray":
        raise UsageError(f"{', '.join(ray_only)}: only for --executor ray", "add --executor ray")
    if config.train.devices > 1:
        raise UsageError(
            f"train.devices={config.train.devices} is for bilstm train; compare trains each run on one device",
            "remove train.devices, and use compare.workers or --executor ray for parallel runs",
        )
    if config.compare.executor == "ray":
        from ..compare.ray_executor import preflight

        preflight(config.compare.address)  # Ray installed, --address reachable: before the backend loads
    variants = comparison_variants(
        config, split_list(options.get("variants")), split_list(options.get("modes")), options.get("vary", ())
    )
    datasets = comparison_datasets(config, options.get("data_paths", ()))
    return config, variants, datasets


def require_files(paths) -> None:
    """Refuse (exit 2) a data file that does not exist, where nothing else would read it."""
    from pathlib import Path

    for path in paths:
        if path and path != "-" and not Path(path).is_file():
            raise UsageError(f"data file not found: {path}", "give an existing dataset file")


def _check_not_in_use(path: str | None) -> None:
    """A directory another process runs in is refused now, in a fraction of a second, rather
    than after the backend has loaded (the claim itself comes later and decides for certain)."""
    if path:
        from pathlib import Path

        from ..runs.directory import check_not_in_use

        check_not_in_use(Path(path))


def _require_comparison(path: str) -> None:
    """``compare --resume`` on a train run would read its config as a comparison's and write
    comparison files into it: refuse (a comparison directory has ``configs/``)."""
    from pathlib import Path

    from ..compare.plan import CONFIGS
    from ..runs.directory import CHECKPOINT, DATA_SPEC

    folder = Path(path)
    if not (folder / CONFIGS).is_dir() and any((folder / name).exists() for name in (CHECKPOINT, DATA_SPEC)):
        raise UsageError(
            f"{path} is a bilstm train run, not a comparison: compare --resume cannot finish it",
            f"resume it with: bilstm train --resume {path}",
        )


def _flag(name: str) -> str:
    names = {"data_paths": "--data", "data_path": "--data", "val_path": "--val-data", "test_path": "--test-data"}
    return names.get(name, option_name(name))


def tune_request(
    config_file: str | None,
    assignments: tuple[str, ...],
    options: dict[str, Any],
    resume: str | None = None,
):
    """The config and checked search space of ``bilstm tune`` (before the backend loads).

    ``options`` are tune's options by name (``search``, ``trials``, ``data_path``...).
    """
    from ..tune.space import search_space
    from ..tune.study import parse_duration, require_optuna

    require_optuna()
    _check_not_in_use(resume or options.get("out"))
    run_time = {
        "train.device": options.get("device"),
        "tune.workers": options.get("workers"),
        "compare.workers": options.get("workers"),
        "compare.executor": options.get("executor"),
    }
    budget = {"tune.trials": options.get("trials"), "tune.timeout": options.get("timeout")}
    if resume:
        from ..runs.directory import load_saved_config

        refuse_with_resume(
            "--resume continues the saved search",
            {
                "--config": config_file,
                "--set": assignments,
                "--out": options.get("out"),
                **{_flag(key): options.get(key) for key in TUNE_EXPERIMENT_OPTIONS},
            },
        )
        config = load_saved_config(resume, {**run_time, **budget})
        dimensions = search_space(config)
    else:
        paths = {
            "data.train_path": options.get("data_path"),
            "data.val_path": options.get("val_path"),
            "data.test_path": options.get("test_path"),
        }
        if "-" in paths.values():
            raise UsageError("bilstm tune reads its data files several times; standard input cannot be one")
        require_files(paths.values())
        flags = {
            **paths,
            **budget,
            "tune.sampler": options.get("sampler"),
            "tune.pruner": options.get("pruner"),
            "tune.metric": options.get("metric"),
            "tune.top_k": options.get("top_k"),
            "tune.confirm_repeats": options.get("confirm_repeats"),
            "tune.storage": options.get("storage"),
            "train.epochs": options.get("epochs"),
            "train.seed": options.get("seed"),
            "train.backend": options.get("backend"),
            "output.overwrite": True if options.get("force") else None,
        }
        config = resolve(config_file, assignments, {**flags, **run_time})
        dimensions = search_space(config, tuple(options.get("search", ())))
    parse_duration(config.tune.timeout)
    if config.tune.trials is None and config.tune.timeout is None:
        raise UsageError("the search has no budget", "give --trials N and/or --timeout DURATION")
    if config.train.devices > 1:
        raise UsageError(f"train.devices={config.train.devices} is for bilstm train", "remove train.devices")
    return config, dimensions


# tune options that change the experiment: refused with --resume
TUNE_EXPERIMENT_OPTIONS = (
    *("search", "data_path", "val_path", "test_path", "sampler", "pruner", "metric"),
    *("top_k", "confirm_repeats", "storage", "epochs", "seed", "backend"),
)


def recordable(config: Config) -> Config:
    """The config with what was left open fixed, for recording: the seed (drawn at random if
    none was given) and the backend (the one selected for this process)."""
    resolved = config.model_copy(deep=True)
    if resolved.train.seed is None:
        resolved.train.seed = draw_seed()
    resolved.train.backend = backend.name()
    return resolved
