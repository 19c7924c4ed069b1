"""Running a comparison's jobs on a Ray cluster (``bilstm compare --executor ray``).

The unit of work stays the job (runs that share one compiled program, see
:mod:`bilstm_cli.compare.plan`): each job is one Ray task, a generator that first says hello
(process, host, package versions) and then yields every finished run's record as soon as it
exists. The driver (this process) hands each record to ``on_result``, which writes it; workers
write nothing, so the nodes need no shared filesystem. Dataset files go to the object store
once (``ray.put``); generated data is a function of the seed and is made where it is used.
The exception: a file larger than ``data.memory_limit`` is streamed, and only what the driver's
pass over it found travels; every worker reads its chunks from the same path, so such a file
must be on a filesystem all nodes share (a worker that cannot read it refuses the job, naming
its host and the path).

Faults:

- a worker process that dies (killed, out of memory, its node lost) costs at most the run it
  was training: the task has no Ray retries, and the driver resubmits only that job's missing
  runs, up to :data:`RETRIES` times per job;
- a worker whose packages differ from the driver's is refused (every job's hello is checked
  against :func:`~bilstm_cli.compare.execute.worker_versions` before it trains), so one
  comparison never mixes versions;
- Ctrl-C (``should_stop``) cancels the outstanding tasks; finished runs are already written.

Without ``--address`` a private Ray instance is started for the command, bound to 127.0.0.1
with no dashboard, and shut down at the end. This module imports neither Ray nor the backend at
import time: Ray workers import it to run :func:`_job_task`, and must select the driver's
backend before Keras loads.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import backend
from ..errors import BilstmError, TrainingError, UsageError, first_line
from ..fileio.streams import quiet_stderr
from ..signals import deferred_signals
from .plan import Job, Part

if TYPE_CHECKING:
    from ..config.schema import Config
    from ..data.prepare import DataFiles
    from .execute import OnResult, ShouldStop

INSTALL = 'pip install "bilstm[ray]"'
RETRIES = 3  # per job: resubmissions of its missing runs after its worker died
POLL_SECONDS = 0.5  # how often the driver checks for Ctrl-C while it waits for results
PROBE_SECONDS = 2.0  # TCP connect timeout for an explicit --address
TASK_NAME = "bilstm-job"  # the worker's process title is ray::bilstm-job-<driver pid>-<job>
# Bounds on joining a cluster (set only with --address, before Ray is imported): an address
# that answers but is not a Ray head fails in seconds, not after Ray's default minute of retries.
JOIN_TIMEOUTS = {
    "RAY_gcs_rpc_server_connect_timeout_s": "3",
    "RAY_py_gcs_connect_timeout_s": "3",
    "RAY_gcs_server_port_wait_time_s": "1",
}
Notify = Callable[[str], None]


class RayExecutor:
    """Jobs as Ray tasks, on a private local instance or a running cluster.

    Connects (or starts the private instance) and checks the cluster's resources on creation,
    so a bad address or an impossible request fails before anything is written.

    Args:
        config: the comparison's config.
        files: each dataset's files, read once by the driver (by dataset name; None: generated).
        address: None (or ``local``) starts a private instance; ``auto`` joins the cluster running on this
            machine; ``HOST:PORT`` joins that cluster's head.
        cpus_per_run: CPUs a job's task reserves (fractions allowed; its thread count, rounded down).
        gpus_per_run: GPUs a job's task reserves (fractions allowed; 0 trains on the CPU).
        notify: receives messages for people (a worker that died and what is resubmitted).

    Raises:
        UsageError: Ray is not installed, the address cannot be reached, or no node has the
            resources one run asks for.
    """

    def __init__(
        self,
        config: Config,
        files: dict[str, DataFiles | None],
        address: str | None = None,
        cpus_per_run: float = 1.0,
        gpus_per_run: float = 0.0,
        notify: Notify | None = None,
    ):
        self.config = config
        self.files = files
        self.address = None if address in (None, "", "local") else address
        self.cpus_per_run = cpus_per_run
        self.gpus_per_run = gpus_per_run
        self.notify = notify or (lambda text: None)
        self.threads = max(1, int(cpus_per_run))
        self._task_config = _task_config(config, gpus_per_run)
        self._ray = _connect(self.address)
        try:
            self.slots, self.description = self._capacity()
        except BaseException:
            self.shutdown()
            raise

    # ------------------------------------------------------------------------ cluster

    def _capacity(self) -> tuple[int, str]:
        """How many runs fit on the cluster at once, and a description for the plan line."""
        nodes = [node["Resources"] for node in self._ray.nodes() if node.get("Alive")]
        cpus = sum(node.get("CPU", 0) for node in nodes)
        gpus = sum(node.get("GPU", 0) for node in nodes)
        slots = sum(self._runs_on(node) for node in nodes)
        where = "private instance on 127.0.0.1" if self.address is None else f"cluster at {self._gcs_address()}"
        per_run = f"{self.cpus_per_run:g} CPU" + (f" + {self.gpus_per_run:g} GPU" if self.gpus_per_run else "")
        cluster = f"{len(nodes)} node(s), {cpus:g} CPUs, {gpus:g} GPUs"
        if not slots:
            raise UsageError(
                f"no node of the Ray {where} ({cluster}) has {per_run} for a run",
                "lower --cpus-per-run / --gpus-per-run, or add nodes to the cluster",
            )
        return slots, f"ray ({where}: {cluster}; {per_run} per run)"

    def _gcs_address(self) -> str:
        try:
            return self._ray.get_runtime_context().gcs_address
        except Exception:  # noqa: BLE001 - only for the plan line
            return str(self.address)

    def _runs_on(self, node: dict[str, float]) -> int:
        fits = math.floor(node.get("CPU", 0) / self.cpus_per_run + 1e-9)
        if self.gpus_per_run:
            fits = min(fits, math.floor(node.get("GPU", 0) / self.gpus_per_run + 1e-9))
        return fits

    def shutdown(self) -> None:
        """Disconnect (and stop the private instance); safe to call twice."""
        ray = self._ray
        if ray is not None and ray.is_initialized():
            with quiet_stderr():
                ray.shutdown()

    # ------------------------------------------------------------------------ jobs

    def run(self, jobs: list[Job], on_result: OnResult, should_stop: ShouldStop) -> None:
        """Run the jobs on the cluster; ``on_result`` gets each run's record as it finishes.

        Returns early (after cancelling what is outstanding) when ``should_stop()`` is true.

        Raises:
            UsageError: a worker's package versions differ from this process's.
            TrainingError: a job's worker died more than :data:`RETRIES` times.
            BilstmError: what a job raised (bad data, NaN loss, ...), with its exit code.
        """
        from .execute import worker_versions

        ray = self._ray
        expected = worker_versions()
        files = {name: ray.put(data) for name, data in self.files.items() if data is not None}  # once each
        task = ray.remote(_job_task)
        driver = os.getpid()
        states = [_JobState(index, job) for index, job in enumerate(jobs)]
        pending: dict[Any, _JobState] = {}

        def submit(state: _JobState) -> None:
            state.attempts += 1
            # the whole planned job, never just its missing runs: a run's numbers depend on which
            # runs share its program; runs that already arrived are recognised and skipped
            job = state.job
            options = {"num_cpus": self.cpus_per_run, "num_gpus": self.gpus_per_run}
            generator = task.options(
                name=f"{TASK_NAME}-{driver}-{state.index}", max_retries=0, retry_exceptions=False, **options
            ).remote(self._task_config, job, files.get(job.dataset.name), self.threads)
            pending[generator] = state

        def take(generator, stopping: bool) -> None:
            """Handle the next message of a generator that ray.wait found ready."""
            state = pending[generator]
            try:
                message = ray.get(next(generator))
            except StopIteration:
                del pending[generator]
                if state.remaining().runs and not stopping:
                    raise TrainingError(f"{state.name()}: its Ray task ended with runs missing") from None
                return
            except ray.exceptions.RayTaskError as error:
                del pending[generator]
                if not stopping:
                    raise _task_error(error) from None
                return
            except ray.exceptions.RayError as error:  # the worker (or its node) died
                del pending[generator]
                if not stopping and state.remaining().runs:  # (a worker killed after its last run costs nothing)
                    self._resubmit(state, error, submit)
                return
            if message["kind"] == "hello":
                _check_versions(expected, message)  # before the job's first result
            elif message["kind"] == "error":
                raise _rebuild_error(message)
            elif state.add(message["record"]):
                on_result(message["record"])

        try:
            for state in states:
                submit(state)
            while pending and not should_stop():
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_SECONDS)
                for generator in ready:
                    take(generator, should_stop())
            for generator in list(pending):  # stopping: keep the runs that finished meanwhile
                while generator in pending and ray.wait([generator], timeout=0)[0]:
                    take(generator, True)
        finally:
            for generator in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(generator, force=True)  # force: training sits in native code

    def _resubmit(self, state: _JobState, error: Exception, submit: Callable[[_JobState], None]) -> None:
        missing = state.remaining().runs
        if state.attempts > RETRIES:
            raise TrainingError(
                f"{state.name()}: its Ray worker died {state.attempts} times ({type(error).__name__}); "
                f"{missing} run(s) not done",
                "finished runs are saved; `bilstm compare --resume DIR` runs the rest",
            )
        self.notify(
            f"ray: the worker of {state.name()} died ({type(error).__name__}); "
            f"resubmitting its {missing} missing run(s) (retry {state.attempts} of {RETRIES})"
        )
        submit(state)


class _JobState:
    """A job and which of its runs have arrived, for resubmitting only the missing ones."""

    def __init__(self, index: int, job: Job):
        self.index = index
        self.job = job
        self.attempts = 0
        self.done: set[tuple[str, int]] = set()

    def name(self) -> str:
        variants = ", ".join(part.variant.name for part in self.job.parts)
        return f"job {self.index + 1} ({self.job.dataset.name}: {variants})"

    def add(self, record: dict) -> bool:
        key = (record["variant"], record["repeat"])
        if key in self.done:
            return False
        self.done.add(key)
        return True

    def remaining(self) -> Job:
        """The job's runs that have not arrived (to count them; a resubmission runs the whole job)."""
        parts = []
        for part in self.job.parts:
            repeats = [r for r in part.repeats if (part.variant.name, r) not in self.done]
            if repeats:
                parts.append(Part(part.variant, repeats))
        return Job(self.job.dataset, parts)


# ---------------------------------------------------------------------------- connecting


def preflight(address: str | None) -> None:
    """The checks that need neither Ray nor the backend imported (the CLI runs them first, so
    a missing Ray or an unreachable address fails in a second): Ray is installed, and an
    explicit ``HOST:PORT`` accepts connections."""
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise UsageError("--executor ray needs Ray, which is not installed", f"install it with: {INSTALL}")
    if address not in (None, "", "local", "auto"):
        _probe(address)


def _connect(address: str | None):
    """Import Ray and start a private instance (``address`` None) or join a cluster; the module."""
    preflight(address)
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if address is None:
        # keep 127.0.0.1 literal: Ray otherwise swaps it for the host's address, and its gRPC
        # servers listen on every interface (read when Ray is imported; set again below)
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    else:
        for name, value in JOIN_TIMEOUTS.items():
            os.environ.setdefault(name, value)
        if address != "auto" and "RAY_AUTH_MODE" not in os.environ and _has_auth_token():
            # Ray enables token authentication by default, but only when it joins "auto"
            os.environ["RAY_AUTH_MODE"] = "token"
    try:
        import ray
    except ImportError as error:
        raise UsageError(f"--executor ray: Ray cannot be imported ({error})", f"reinstall it: {INSTALL}") from None
    if address is None:
        with contextlib.suppress(Exception):  # a private setting of Ray's, for when it was imported earlier
            ray._private.ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        # Ray's native code writes connection warnings straight to fd 2; a Ctrl-C inside ray.init
        # can crash its threads, so it waits until Ray is up and is then obeyed (below)
        with quiet_stderr(), deferred_signals() as deferred:
            if address is None:
                ray.init(
                    address="local",  # never a stale cluster or $RAY_ADDRESS
                    include_dashboard=False,
                    _node_ip_address="127.0.0.1",
                    log_to_driver=False,
                    logging_level="ERROR",
                )
            else:
                ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    except (ConnectionError, RuntimeError, TimeoutError, ValueError) as error:
        with contextlib.suppress(Exception):
            ray.shutdown()
        where = "start a private Ray instance" if address is None else f"connect to the Ray cluster at {address}"
        reason = first_line(error)
        if address == "auto" and "Could not find any running Ray instance" in reason:
            reason = "no Ray cluster is running on this machine (and RAY_ADDRESS is not set)"
        raise UsageError(f"cannot {where}: {reason}", _address_hint(address)) from None
    if deferred.arrived:  # stopped while Ray started: shut it down in order, then stop
        with quiet_stderr():
            ray.shutdown()
        raise KeyboardInterrupt
    with contextlib.suppress(Exception):
        # Ray prints "(raylet) A worker died ..." on stdout from a listener thread: a resubmitted
        # job says so on stderr instead, and --json keeps stdout for the summary
        ray._private.worker.print_to_stdstream = lambda *args, **kwargs: None
    return ray


def _probe(address: str) -> None:
    """Fail fast on an explicit HOST:PORT that does not accept connections."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--address {address}: expected auto or HOST:PORT", "e.g. --address 10.0.0.1:6379")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_SECONDS).close()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise UsageError(f"cannot reach the Ray cluster at {address}: {reason}", _address_hint(address)) from None


def _address_hint(address: str | None) -> str:
    if address is None:
        return "see `ray start --help`, or use --executor local"
    return "start its head with `ray start --head --port 6379`, or leave out --address for a private instance"


def _has_auth_token() -> bool:
    if os.environ.get("RAY_AUTH_TOKEN"):
        return True
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token"
    return Path(path).is_file()


# ---------------------------------------------------------------------------- checks and errors


def _task_config(config: Config, gpus_per_run: float) -> str:
    """The config a task trains with: the driver's backend, and the CPU when it reserves no GPU
    (Ray hides no GPU from such a task, and unreserved runs must not pile onto GPU 0)."""
    device = config.train.device
    if device.startswith("gpu") and not gpus_per_run:
        raise UsageError(f"--device {device} with --executor ray needs --gpus-per-run (e.g. 1, or 0.5 to share)")
    if device.startswith("gpu:") and device != "gpu:0":
        raise UsageError(f"--device {device}: Ray assigns each run its GPU", "use --device gpu (or auto)")
    update = {"backend": backend.name(), "device": "cpu" if device == "auto" and not gpus_per_run else device}
    return config.model_copy(update={"train": config.train.model_copy(update=update)}).model_dump_json()


def _check_versions(expected: dict[str, str], hello: dict) -> None:
    """Refuse a worker whose versions differ from the driver's (Python: major.minor only)."""
    theirs = hello["versions"]
    for package in sorted(set(expected) | set(theirs)):
        mine, other = expected.get(package), theirs.get(package)
        if package == "python" and mine and other:
            mine, other = ".".join(mine.split(".")[:2]), ".".join(other.split(".")[:2])
        if mine != other:
            raise UsageError(
                f"version mismatch: the Ray worker on {hello['host']} (pid {hello['pid']}) has {package} "
                f"{other or 'missing'}, this process {mine or 'missing'}; runs would not be comparable",
                "install the same versions on every node; finished runs are kept for --resume",
            )


def _task_error(error) -> BaseException:
    """An unexpected exception inside a task, without Ray's coloured traceback text."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        return cause
    return TrainingError(f"a Ray task failed: {first_line(error)}")


def _rebuild_error(message: dict) -> BilstmError:
    """One of our errors, raised in a task, with its type (exit code), message and hint."""
    from .. import errors

    kind = getattr(errors, message["type"], None)
    if not (isinstance(kind, type) and issubclass(kind, BilstmError)):
        kind = BilstmError
    return kind(message["message"], message["hint"])


# ---------------------------------------------------------------------------- the task


def _job_task(config_json: str, job: Job, files: DataFiles | None, threads: int):
    """A job, run in a Ray worker: a hello, then one message per finished run, as each ends.

    Our own errors come back as messages (type, message and hint survive); anything else
    raises, and the driver shows its first line.
    """
    import copy
    import queue
    import threading

    from ..config.schema import Config

    config = Config.model_validate_json(config_json)
    try:
        backend.select(config.train.backend)  # before anything imports Keras
        from ..device import select_device

        select_device(config.train.device, threads=threads)
        from .execute import run_job, worker_versions

        hello = {"pid": os.getpid(), "host": socket.gethostname(), "versions": worker_versions()}
    except BilstmError as error:
        yield _error_message(error)
        return
    yield {"kind": "hello", **hello}

    files = copy.deepcopy(files)  # arrays from the object store are read-only
    results: queue.Queue = queue.Queue()
    failure: list[BaseException] = []

    def work() -> None:  # run_job reports through a callback; the generator yields from a queue
        try:
            run_job(config, job, results.put, lambda: False, threads, files)
        except BaseException as error:  # noqa: BLE001 - handed to the generator below
            failure.append(error)
        finally:
            results.put(None)

    thread = threading.Thread(target=work, name=TASK_NAME, daemon=True)
    thread.start()
    while (record := results.get()) is not None:
        yield {"kind": "result", "record": record}
    thread.join()
    if failure:
        if isinstance(failure[0], BilstmError):
            yield _error_message(failure[0])
            return
        raise failure[0]


def _error_message(error: BilstmError) -> dict:
    return {"kind": "error", "type": type(error).__name__, "message": error.message, "hint": error.hint}
