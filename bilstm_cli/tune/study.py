"""The Optuna study of ``bilstm tune``: storage, sampler, pruner, budget and stale trials.

The driver alone owns the study (ask-and-tell): it asks for a trial, trains it, reports its
validation scores as it goes (for the pruner) and tells the outcome. The study lives in an
RDB storage (SQLite ``study.db`` in the tune directory by default), so a killed search loses
no finished trial: on resume, a trial left RUNNING is marked FAIL and its parameters are
enqueued again (exactly once), and trial numbers go on from where they stopped.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..config.schema import TuneConfig
from ..errors import UsageError
from .space import Dimension, grid_space

STUDY_DB = "study.db"
STUDY_NAME = "bilstm-tune"
STALE = "stale"  # user attribute of a trial found RUNNING on resume (marked FAIL)
RETRY_OF = "retry_of"  # user attribute of the trial that re-runs a stale one
FAILED = "error"  # user attribute of a trial that failed while training (NaN loss...)


def require_optuna():
    """Optuna, or a clear exit 2 with the pip command."""
    try:
        import optuna
    except ImportError:
        raise UsageError(
            "bilstm tune needs Optuna, which is not installed", 'install it with: pip install "bilstm[tune]"'
        ) from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def parse_duration(text: str | None) -> float | None:
    """``90``, ``90s``, ``10m``, ``2h`` in seconds (None: no limit)."""
    if text is None:
        return None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(s|m|h)?", str(text).strip())
    if not match:
        raise UsageError(f"--timeout {text!r}: expected a duration such as 90s, 10m or 2h")
    return float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, None: 1}[match.group(2)]


def storage_url(tune: TuneConfig, folder: Path) -> str:
    return tune.storage or f"sqlite:///{(folder / STUDY_DB).resolve()}"


PRUNE_AFTER = 0.2  # no trial is pruned before this fraction of its epochs


def open_study(tune: TuneConfig, folder: Path, dimensions: list[Dimension], seed: int, create: bool, epochs: int = 0):
    """The study of a tune directory: created for a new search, loaded on resume.

    ``epochs``: a trial's planned epochs. The pruners wait for :data:`PRUNE_AFTER` of them: every
    model's early validation loss is close to chance, so a comparison at the first epochs
    would prune on noise (on ArrowHead, 8 of 20 trials were pruned at epoch 1 without it).
    """
    optuna = require_optuna()
    direction = "maximize" if tune.metric == "accuracy" else "minimize"
    if tune.sampler == "grid":
        sampler = _grid_sampler(optuna)(grid_space(dimensions), seed=seed)
    elif tune.sampler == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(1, tune.startup_trials))
    warmup = int(epochs * PRUNE_AFTER)
    if tune.pruner == "median":
        pruner = optuna.pruners.MedianPruner(n_startup_trials=tune.startup_trials, n_warmup_steps=warmup)
    elif tune.pruner == "halving":
        pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=max(1, warmup))
    else:
        pruner = optuna.pruners.NopPruner()
    url = storage_url(tune, folder)
    try:
        storage = optuna.storages.RDBStorage(url, engine_kwargs=_engine_options(url))
        # a resume creates it too when the search was killed before its study existed
        return optuna.create_study(
            storage=storage,
            study_name=STUDY_NAME,
            direction=direction,
            sampler=sampler,
            pruner=pruner,
            load_if_exists=not create,
        )
    except optuna.exceptions.DuplicatedStudyError:
        raise UsageError(f"the storage {url} already holds a bilstm tune study", "give another --storage") from None
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy's errors: a bad URL, an unreachable server
        if isinstance(exc, UsageError):
            raise
        raise UsageError(f"cannot open the study storage {url}: {type(exc).__name__}: {exc}") from None


def _grid_sampler(optuna):
    """Optuna's grid sampler without its ``study.stop()`` when the grid is exhausted (which
    only works inside ``study.optimize``; the driver's budget never asks past the grid)."""

    class AskAndTellGridSampler(optuna.samplers.GridSampler):
        def after_trial(self, study, trial, state, values) -> None:
            return None

    return AskAndTellGridSampler


def _engine_options(url: str) -> dict[str, Any]:
    # SQLite: wait for a lock rather than fail at once
    return {"connect_args": {"timeout": 30}} if url.startswith("sqlite") else {}


def recover_stale(study) -> list[int]:
    """Trials left RUNNING by a killed search: mark them FAIL and enqueue their parameters
    again, once each (also when the previous resume died halfway). Returns their numbers."""
    from optuna.trial import TrialState

    storage = study._storage
    trials = study.get_trials(deepcopy=False)
    stale = []
    for trial in trials:
        if trial.state == TrialState.RUNNING:
            storage.set_trial_user_attr(trial._trial_id, STALE, True)
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            stale.append(trial.number)
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get(RETRY_OF) for t in trials}
    for trial in trials:
        if trial.user_attrs.get(STALE) and trial.number not in retried:  # (values drawn so far, maybe none)
            study.enqueue_trial(trial.params, user_attrs={RETRY_OF: trial.number}, skip_if_exists=False)
    return stale


def finished(study) -> list:
    """Trials that count towards the budget: complete, pruned, or failed while training
    (a stale trial does not count: it is run again)."""
    from optuna.trial import TrialState

    return [
        t
        for t in study.get_trials(deepcopy=False)
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        or (t.state == TrialState.FAIL and not t.user_attrs.get(STALE))
    ]


def trials_budget(tune: TuneConfig, dimensions: list[Dimension]) -> int | None:
    """The number of finished trials to reach; a grid has at most its number of points."""
    if tune.sampler != "grid":
        return tune.trials
    points = 1
    for dimension in dimensions:
        points *= len(dimension.choices)
    return points if tune.trials is None else min(points, tune.trials)


def best_trials(study, k: int, higher_is_better: bool) -> list:
    """The ``k`` best complete trials, distinct in their parameters, best first."""
    from optuna.trial import TrialState

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
    complete.sort(key=lambda t: (-t.value if higher_is_better else t.value, t.number))
    chosen, seen = [], set()
    for trial in complete:
        key = repr(sorted(trial.params.items()))
        if key not in seen:
            seen.add(key)
            chosen.append(trial)
        if len(chosen) == k:
            break
    return chosen
