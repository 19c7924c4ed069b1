"""``bilstm tune``: search a config space with Optuna, confirm the finalists, train the winner.

Phases, each resumable (``--resume DIR`` after Ctrl-C or kill -9):

1. search: trials asked from the study, trained one at a time in this process (with a
   pruning callback), told back; the study is in SQLite (``study.db``) or ``--storage``;
2. confirm: the ``top_k`` best trials and the starting config re-run by ``run_compare`` as
   a paired comparison in ``confirm/`` with fresh seeds, scored on data the search never saw;
3. the winner's config as ``best.yaml``, trained on all the training data into ``best-run/``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import backend
from ..compare.plan import comparison_datasets
from ..compare.summary import load_results
from ..config.resolve import with_overrides
from ..config.schema import CompareConfig, Config, DatasetSpec, OutputConfig, TuneConfig
from ..config.variants import comparison_variants, recorded_variants
from ..data import stdin_data
from ..data.prepare import read_files
from ..device import select_device
from ..errors import BilstmError, ConfigError, Interrupted
from ..fileio import atomic
from ..fileio.files import write_json
from ..runs import directory
from ..signals import StopRequest
from ..tune import confirm, outputs
from ..tune.space import Dimension
from ..tune.study import FAILED, STUDY_DB, finished, open_study, parse_duration, recover_stale, trials_budget
from ..tune.trial import quiet_retracing, train_trial
from .requests import recordable

RUN_TIME_KEYS = ("workers", "executor", "address", "cpus_per_run", "gpus_per_run")
NO_CONFIRMATION = "no confirmation (tune.confirm_repeats: 0): search scores only, which are optimistic"


@dataclass
class TuneResult:
    out: Path
    summary: dict[str, Any]
    wall_seconds: float


def run_tune(
    config: Config,
    dimensions: list[Dimension],
    reporter,
    compare_reporter,
    train_reporter,
    out: str | None = None,
    resume: str | None = None,
) -> TuneResult:
    """Search, confirm and train the winner (see the module's docstring).

    Args:
        config: the resolved config (its ``tune`` section; for ``resume``: the saved one).
        dimensions: the checked search space (:func:`~bilstm_cli.tune.space.search_space`).
        reporter: receives the search's start, each finished trial and messages.
        compare_reporter, train_reporter: the confirmation's and the best run's reporters.
        out: the tune directory of a new search (default ``output.root/<timestamp>-tune``).
        resume: a tune directory to continue.
    """
    try:
        return _tune(config, dimensions, reporter, compare_reporter, train_reporter, out, resume)
    finally:
        directory.release_run_directories()


def _tune(config, dimensions, reporter, compare_reporter, train_reporter, out, resume) -> TuneResult:
    started = time.perf_counter()
    backend.select(config.train.backend)
    quiet_retracing()
    stdin_data.require_data(config.data)
    if resume is None:
        config = recordable(config)
        config.tune.space = {d.key: d.spec() for d in dimensions}
        folder = directory.prepare_run_directory(
            directory.run_directory(config.output, "tune", out), config.output.overwrite
        )
        directory.save_config(folder, config)
    else:
        folder = Path(resume)
        directory.hold_run_directory(folder)
    seed = config.train.seed
    search, dataset = _search_data(config, folder, seed)

    # ---------------------------------------------------------------- search
    study = open_study(config.tune, folder, dimensions, seed, create=resume is None, epochs=config.train.epochs)
    stale = recover_stale(study) if resume is not None else []
    budget = trials_budget(config.tune, dimensions)
    seconds = parse_duration(config.tune.timeout)
    reporter.start(
        {
            "folder": str(folder),
            "dimensions": [d.spec() for d in dimensions],
            "keys": [d.key for d in dimensions],
            "trials": budget,
            "timeout": seconds,
            "done": len(finished(study)),
            "seed": seed,
            "sampler": config.tune.sampler,
            "pruner": config.tune.pruner,
            "metric": config.tune.metric,
            "stale": stale,
        }
    )
    files = read_files(search.data)
    deadline = None if seconds is None else time.monotonic() + seconds
    interrupted = False
    try:
        with StopRequest("stopping the running trials at their next chunk; finished trials are kept") as stop:
            search_run = _Search(study, search, dimensions, seed, budget, deadline, reporter, folder, stop)
            if config.tune.workers > 1:
                interrupted = search_run.in_processes(files, config.tune.workers)
            else:
                interrupted = search_run.here(files, select_device(config.train.device))
            interrupted = interrupted or stop.requested
    finally:
        outputs.write_trials(folder, study)
        reporter.close()
    if interrupted:
        raise Interrupted(
            f"search stopped with {len(finished(study))} finished trials, saved in {folder}",
            f"resume with: bilstm tune --resume {folder}",
        )

    # ---------------------------------------------------------------- confirm
    higher = config.tune.metric == "accuracy"
    from ..tune.study import best_trials

    top = best_trials(study, config.tune.top_k, higher)
    if not top:
        raise BilstmError(
            f"no trial finished with a score ({len(finished(study))} pruned or failed); nothing to confirm",
            f"give the search more time or trials: bilstm tune --resume {folder} --trials N (or --timeout)",
        )
    judgement, dropped = None, []
    if config.tune.confirm_repeats > 0:
        judgement, dropped = _confirm(config, folder, dataset, top, seed, compare_reporter)
        directory.hold_run_directory(folder)
    winner_name = judgement["winner"] if judgement else confirm.trial_name(top[0].number)
    by_name = {confirm.trial_name(t.number): t for t in top}
    params = {} if winner_name == confirm.BASELINE else dict(by_name[winner_name].params)

    # ---------------------------------------------------------------- best.yaml and best-run
    best = with_overrides(config, params, winner_name)
    best.tune, best.compare, best.output = TuneConfig(), CompareConfig(), OutputConfig()
    atomic.write_text(folder / outputs.BEST_YAML, best.to_yaml())
    run_dir = folder / outputs.BEST_RUN
    if not ((run_dir / directory.METRICS).exists() and _saved_equals(run_dir, best, ("model", "train", "data"))):
        from .train import run_train

        to_train = best.model_copy(deep=True)
        to_train.output.overwrite = True  # a best-run/ left by a killed run is bilstm's own
        try:
            run_train(to_train, train_reporter, out=str(run_dir))
        except Interrupted as exc:
            raise Interrupted(
                f"the best run stopped; the search and its confirmation are saved in {folder}",
                f"resume with: bilstm tune --resume {folder}",
            ) from exc
        directory.hold_run_directory(folder)
    plots = outputs.write_plots(folder, study)
    summary = _summary(config, study, top, dropped, judgement, winner_name, params, budget, plots)
    write_json(folder / outputs.SUMMARY, summary)
    return TuneResult(folder, summary, time.perf_counter() - started)


def _search_data(config: Config, folder: Path, seed: int) -> tuple[Config, DatasetSpec]:
    """The search's config (training data only: no test file; without one, a split of the
    training file held out first) and the confirmation's dataset (data the search never saw)."""
    data = config.data
    if data.train_path is None:  # generated: the confirmation validates on a fresh set
        settings = {"data.validation_seed": confirm.fresh_validation_seed(data.validation_seed)}
        return config, DatasetSpec(name="generated-fresh", settings=settings)
    name = Path(data.train_path).stem
    if data.test_path is not None:
        search = with_overrides(config, {"data.test_path": None}, "the search")
        return search, DatasetSpec(name=name, train=data.train_path, val=data.val_path, test=data.test_path)
    train, held = outputs.held_out_split(folder, data.train_path, config.tune.holdout, seed, data.memory_budget)
    search = with_overrides(config, {"data.train_path": train}, "the search")
    return search, DatasetSpec(name=name, train=train, val=data.val_path, test=held)


class _Search:
    """The search loop: ask, train (here or in worker processes), tell, until the budget."""

    def __init__(self, study, search: Config, dimensions, seed, budget, deadline, reporter, folder, stop):
        self.study, self.search, self.dimensions, self.seed = study, search, dimensions, seed
        self.budget, self.deadline, self.reporter, self.folder, self.stop = budget, deadline, reporter, folder, stop
        self.metric = search.tune.metric

    def _may_ask(self, running: int = 0) -> bool:
        if self.stop.requested or (self.deadline is not None and time.monotonic() >= self.deadline):
            return False
        return self.budget is None or len(finished(self.study)) + running < self.budget

    def _ask(self):
        """A new trial, its values and its config; None when the schema refuses its values
        together (the trial is told FAIL)."""
        from optuna.trial import TrialState

        trial = self.study.ask()
        params = {d.key: d.suggest(trial) for d in self.dimensions}
        self.reporter.trial_started(trial.number, params)
        try:
            return trial, params, with_overrides(self.search, params, f"trial {trial.number}")
        except ConfigError as exc:  # two values that the schema refuses together
            trial.set_user_attr(FAILED, exc.message)
            self.study.tell(trial, state=TrialState.FAIL)
            self.reporter.trial_finished(_row(self.study, trial.number, params, "failed", None, 0, 0.0, exc.message))
            outputs.write_trials(self.folder, self.study)
            return None

    def _tell(self, trial, params, outcome) -> None:
        from optuna.trial import TrialState

        trial.set_user_attr("epochs_run", outcome.epochs_run)
        trial.set_user_attr("seconds", round(outcome.seconds, 3))
        trial.set_user_attr("pid", outcome.pid)
        if outcome.state == "complete":
            self.study.tell(trial, outcome.score)
        elif outcome.state == "pruned":
            self.study.tell(trial, state=TrialState.PRUNED)
        else:
            trial.set_user_attr(FAILED, outcome.error or "failed")
            self.study.tell(trial, state=TrialState.FAIL)
        self.reporter.trial_finished(
            _row(self.study, trial.number, params, outcome.state, outcome.score, outcome.epochs_run, outcome.seconds)
        )
        outputs.write_trials(self.folder, self.study)

    def here(self, files, device) -> bool:
        """Trials one at a time in this process; True when one was interrupted (it stays
        RUNNING, and ``--resume`` runs it again)."""
        prepared: dict = {}
        while self._may_ask():
            asked = self._ask()
            if asked is None:
                continue
            trial, params, settings = asked

            def report(value: float, epoch: int, trial=trial) -> bool:
                trial.report(value, epoch)
                return trial.should_prune()

            outcome = train_trial(
                settings, self.seed, device, files, prepared, self.metric, report, lambda: self.stop.requested
            )
            if outcome.state == "interrupted":
                return True
            self._tell(trial, params, outcome)
        return False

    def in_processes(self, files, workers: int) -> bool:
        """Up to ``workers`` trials at once in worker processes (the study stays here)."""
        from ..tune.parallel import TrialPool

        pool = TrialPool(workers, files)
        running: dict = {}  # future -> (trial, params)
        by_number: dict = {}
        interrupted = False

        def on_report(number: int, value: float, epoch: int) -> bool:
            trial = by_number[number]
            trial.report(value, epoch)
            return trial.should_prune()

        try:
            while True:
                while len(running) < workers and self._may_ask(len(running)):
                    asked = self._ask()
                    if asked is not None:
                        trial, params, settings = asked
                        by_number[trial.number] = trial
                        running[pool.submit(trial.number, settings, self.seed, self.metric)] = (trial, params)
                if not running:
                    return interrupted
                done = pool.wait(list(running))
                pool.drain(on_report)  # scores before outcomes: a trial's reports are in the queue first
                for future in done:
                    trial, params = running.pop(future)
                    outcome = future.result()  # a worker's error is raised here
                    if outcome.state == "interrupted":
                        interrupted = True
                    else:
                        self._tell(trial, params, outcome)
                if self.stop.requested:
                    pool.stop()
        finally:
            pool.close()


def _row(study, number, params, state, score, epochs, seconds, note=None) -> dict[str, Any]:
    try:
        best = study.best_trial
        best_so_far = {"number": best.number, "score": best.value}
    except ValueError:  # no complete trial yet
        best_so_far = None
    return {
        "number": number,
        "params": params,
        "state": state,
        "score": score,
        "epochs": epochs,
        "seconds": seconds,
        "best": best_so_far,
        "note": note,
    }


def _confirm(config: Config, folder: Path, dataset: DatasetSpec, top, seed: int, reporter):
    """The paired comparison of the finalists and the baseline in ``confirm/``, judged."""
    from .compare import run_compare

    base = config.model_copy(deep=True)
    variants, dropped = confirm.finalist_variants(base, [(t.number, dict(t.params)) for t in top])
    settings = confirm.confirm_config(base, variants, dataset, seed)
    chosen = comparison_variants(settings)
    datasets = comparison_datasets(settings)
    target = folder / outputs.CONFIRM
    # a confirmation of other finalists (the search went on with a larger budget) is replaced
    recorded = settings.model_copy(deep=True)
    recorded.compare.variants, recorded.compare.datasets = recorded_variants(chosen), datasets
    resume = str(target) if _saved_equals(target, recorded, ("compare", "model", "train", "data")) else None
    try:
        result = run_compare(settings, chosen, reporter, datasets, out=str(target), resume=resume)
    except Interrupted as exc:
        raise Interrupted(
            f"confirmation stopped; the search's trials and the confirmation's finished runs are saved in {folder}",
            f"resume with: bilstm tune --resume {folder}",
        ) from exc
    names = [v.name for v in chosen]
    records = load_results(result.out, [datasets[0].name], names, settings.compare.repeats)[datasets[0].name]
    scores = {confirm.trial_name(t.number): t.value for t in top}
    return confirm.judge(records, config.tune.metric, scores), dropped


def _saved_equals(folder: Path, config: Config, sections: tuple[str, ...]) -> bool:
    """Whether ``folder`` holds a saved config with the same ``sections`` as ``config`` (the
    backend aside): what a resume may keep."""
    if not (folder / directory.CONFIG).exists():
        return False
    try:
        saved = directory.load_saved_config(folder, {})
    except Exception:  # noqa: BLE001 - unreadable: replace it
        return False

    def dump(settings: Config) -> dict:
        values = {name: getattr(settings, name).model_dump(mode="json") for name in sections}
        values.get("train", {}).pop("backend", None)
        for key in RUN_TIME_KEYS:  # how it runs, not what it computes
            values.get("compare", {}).pop(key, None)
        return values

    return dump(saved) == dump(config)


def _summary(config, study, top, dropped, judgement, winner, params, budget, plots) -> dict[str, Any]:
    states: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        states[trial.state.name.lower()] = states.get(trial.state.name.lower(), 0) + 1
    return {
        "metric": config.tune.metric,
        "higher_is_better": config.tune.metric == "accuracy",
        "search_seed": config.train.seed,
        "space": dict(config.tune.space),
        "sampler": config.tune.sampler,
        "pruner": config.tune.pruner,
        "budget": {"trials": budget, "timeout": config.tune.timeout},
        "storage": config.tune.storage or STUDY_DB,
        "trials": states,
        "finalists": [{"name": confirm.trial_name(t.number), "params": t.params, "search_score": t.value} for t in top],
        "same_as_baseline": [confirm.trial_name(n) for n in dropped],
        "confirmation": judgement,
        "winner": {"name": winner, "params": params},
        "verdict": judgement["verdict"] if judgement else NO_CONFIRMATION,
        "files": {
            "trials": outputs.TRIALS_CSV,
            "best_yaml": outputs.BEST_YAML,
            "best_run": outputs.BEST_RUN,
            "confirm": outputs.CONFIRM if judgement else None,
            "plots": plots,
        },
    }
