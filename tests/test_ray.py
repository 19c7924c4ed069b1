"""`bilstm compare --executor ray`: the same numbers as the local executor, a private instance
that listens on loopback only and leaves nothing behind, and the faults (Ctrl-C, a killed
worker, mismatched versions, an unreachable or too small cluster) on real Ray instances.

Each Ray start (and each Ray worker's import of the backend) costs seconds here, so there are
few: on TensorFlow, an interrupted comparison on a private instance (then resumed locally) and
one external cluster (started as `ray start --head` is, bound to 127.0.0.1) for the tests that
join one, a comparison on it with a worker killed mid-run among them; on JAX, one undisturbed
comparison on a private instance. Every Ray result is checked against the local executor's.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import assert_clean_error, run_bilstm, tiny_flags

NEEDS_RAY = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason='needs pip install "bilstm[ray]"')

# 2 variants x 3 repeats in 3 programs of 2 runs (one repeat of each variant), each long enough
# (~1 s) that an interruption after the first result always finds a program in progress
SETTINGS = [
    "--modes", "sum,concat", "--repeats", "3", "--set", "compare.runs_per_program=2",
    *tiny_flags(epochs=60, log_every=20, seed=10),
]  # fmt: skip
RUNS = 6
RAY_PROCESSES = "raylet|gcs_server|ray::"
# A head bound to 127.0.0.1 only: its clients must keep 127.0.0.1 as it is, too (by default
# Ray swaps a loopback address for the machine's own, where such a head does not listen).
LOOPBACK_CLUSTER = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
TF_ONLY = pytest.mark.only_backend("tensorflow")


# ---------------------------------------------------------------------------- helpers


def start(*args, env: dict | None = None) -> subprocess.Popen:
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    for name in ("BILSTM_DEBUG", "RAY_ADDRESS"):
        environment.pop(name, None)
    return subprocess.Popen(
        [sys.executable, "-m", "bilstm_cli", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=environment,
    )


def until_first_result(process: subprocess.Popen) -> list[str]:
    """Read stderr until the first finished run's line (``[1/6] ...``)."""
    lines = []
    for raw in process.stderr:
        lines.append(raw.decode())
        if lines[-1].startswith("[1/"):
            return lines
    raise AssertionError(f"no result before the end (exit {process.wait()}): {''.join(lines)}")


def finish(process: subprocess.Popen, lines: list[str], timeout: float = 300) -> tuple[int, str, str]:
    stdout, stderr = process.communicate(timeout=timeout)
    return process.returncode, "".join(lines) + stderr.decode(), stdout.decode()


def ray_processes() -> set[int]:
    found = subprocess.run(["pgrep", "-f", RAY_PROCESSES], capture_output=True, text=True).stdout
    return {int(pid) for pid in found.split()}


def left_behind(before: set[int], wait: float = 15) -> set[int]:
    """Ray processes that appeared since ``before`` and are still there after up to ``wait`` s."""
    deadline = time.monotonic() + wait
    while (new := ray_processes() - before) and time.monotonic() < deadline:
        time.sleep(0.5)
    return new


def descendants(root: int) -> set[int]:
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in found} - found
        found |= more
        grew = bool(more)
    return found


def command_line(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def listeners(pids: set[int]) -> list[tuple[str, str]]:
    """(local address, process name) of every listening TCP socket of these processes (ss -ltnp)."""
    table = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in table.splitlines():
        columns = line.split()
        for name, pid in re.findall(r'\("([^"]*)",pid=(\d+)', line):
            if int(pid) in pids:
                found.append((columns[3], name))
    return found


def is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    return host.startswith(("127.", "::ffff:127.")) or host == "::1"


def comparable_records(out: Path) -> dict[str, dict]:
    """Every run's record without what differs between identical computations (timings, pid)."""
    records = {}
    for path in sorted((out / "results").rglob("*.json")):
        record = json.loads(path.read_text())
        record.pop("seconds"), record.pop("worker"), record["history"].pop("elapsed")
        records[path.name] = record
    return records


def comparable_summary(out: Path) -> dict:
    def without_timings(value):
        if isinstance(value, dict):
            return {k: without_timings(v) for k, v in value.items() if k != "seconds_per_run"}
        if isinstance(value, list):
            return [without_timings(v) for v in value]
        return value

    return without_timings(json.loads((out / "summary.json").read_text()))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The comparison on the local executor (in this process)."""
    from click.testing import CliRunner

    from bilstm_cli.cli import main

    out = tmp_path_factory.mktemp("local") / "out"
    result = CliRunner().invoke(main, ["compare", *SETTINGS, "--out", str(out), "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def ray_cluster():
    """A Ray cluster started the way a user starts one (`ray start --head`), bound to 127.0.0.1;
    its environment selects JAX, so its workers train on TensorFlow only if the driver says so."""
    port = free_port()
    environment = {
        **os.environ,
        **LOOPBACK_CLUSTER,
        "RAY_USAGE_STATS_ENABLED": "0",
        "BILSTM_BACKEND": "jax",
        "KERAS_BACKEND": "jax",
    }
    environment.pop("RAY_ADDRESS", None)
    command = [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1"]
    command += [f"--port={port}", f"--ray-client-server-port={free_port()}", "--include-dashboard=false"]
    command += ["--num-cpus=2", "--num-gpus=0", "--disable-usage-stats"]
    head = subprocess.Popen(
        command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 90
    while True:
        assert head.poll() is None and time.monotonic() < deadline, "ray start --head did not come up"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.3)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        head.terminate()  # `ray start --block` stops its cluster (only this one) on SIGTERM
        head.wait(timeout=60)
        deadline = time.monotonic() + 15
        while (left := subprocess.run(["pgrep", "-f", f"127.0.0.1:{port}"], capture_output=True).stdout.split()) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.5)
        assert not left, f"processes of the test cluster left behind: {left}"


# ---------------------------------------------------------------------------- a private instance


def assert_loopback_only(process: subprocess.Popen) -> None:
    """While a private instance runs: every socket its processes listen on is on 127.0.0.1,
    and there is no dashboard."""
    ours = descendants(process.pid)
    if shutil.which("ss"):
        sockets = listeners(ours)
        assert {"gcs_server", "raylet"} <= {name for _, name in sockets}, sockets
        assert [s for s in sockets if not is_loopback(s[0])] == []
        assert not any(address.endswith(":8265") for address, _ in sockets)
    # Ray keeps a head process called dashboard, but without its web frontend
    dashboards = [command for command in map(command_line, ours) if b"dashboard/dashboard.py\0" in command]
    assert all(b"--disable-frontend" in command for command in dashboards)


@NEEDS_RAY
@pytest.mark.only_backend("jax")  # on TensorFlow, the tests below cover this and more
def test_ray_gives_the_same_numbers_as_local(reference, tmp_path):
    before = ray_processes()
    out = tmp_path / "r"
    process = start("compare", *SETTINGS, "--executor", "ray", "--out", out, "--json")
    lines = until_first_result(process)
    assert_loopback_only(process)
    code, stderr, stdout = finish(process, lines)
    assert code == 0, stderr
    assert "executor ray (private instance on 127.0.0.1" in stderr  # the plan line
    assert comparable_records(out) == comparable_records(reference)  # histories, fingerprints, final scores
    assert comparable_summary(out) == comparable_summary(reference)
    assert json.loads(stdout)["verdict"] == json.loads((reference / "summary.json").read_text())["verdict"]
    assert left_behind(before) == set()


@NEEDS_RAY
@TF_ONLY
def test_ctrl_c_keeps_finished_runs_and_resume_finishes_the_rest(tmp_path, reference, cli):
    before = ray_processes()
    out = tmp_path / "c"
    process = start("compare", *SETTINGS, "--executor", "ray", "--out", out)
    lines = until_first_result(process)
    assert_loopback_only(process)
    process.send_signal(signal.SIGINT)
    interrupted = time.monotonic()
    code, stderr, _ = finish(process, lines, timeout=60)
    assert code == 130, stderr
    assert time.monotonic() - interrupted < 20  # outstanding tasks are cancelled, not waited for
    assert "resume with: bilstm compare --resume" in stderr and "Traceback" not in stderr
    kept = comparable_records(out)
    assert 1 <= len(kept) < RUNS and not (out / "summary.json").exists()
    expected = comparable_records(reference)
    assert all(kept[name] == expected[name] for name in kept)
    assert left_behind(before) == set()

    resumed = cli("compare", "--resume", out, "--executor", "local", "--json")
    assert resumed.exit_code == 0, resumed.stderr
    assert f"{len(kept)} already done" in resumed.stderr
    assert resumed.stderr.count("] generated / ") == RUNS - len(kept)  # only the missing runs
    assert comparable_records(out) == expected
    assert comparable_summary(out) == comparable_summary(reference)


# ---------------------------------------------------------------------------- joining a cluster


@NEEDS_RAY
@TF_ONLY
def test_a_killed_worker_costs_at_most_its_run(ray_cluster, reference, tmp_path):
    out = tmp_path / "k"
    process = start(
        "compare", *SETTINGS, "--executor", "ray", "--address", ray_cluster, "--out", out, env=LOOPBACK_CLUSTER
    )
    lines = until_first_result(process)
    # the last job starts when the first one ends, so it is still training: its worker dies mid-job
    victim = None
    while victim is None and process.poll() is None:
        busy = subprocess.run(["pgrep", "-f", f"ray::bilstm-job-{process.pid}-2"], capture_output=True, text=True)
        victim = int(busy.stdout.split()[0]) if busy.stdout.strip() else time.sleep(0.05)
    assert victim is not None, "the comparison ended before its last job started"
    os.kill(victim, signal.SIGKILL)
    code, stderr, _ = finish(process, lines)
    assert code == 0, stderr
    assert "died (WorkerCrashedError); resubmitting its 2 missing run(s)" in stderr and "Traceback" not in stderr
    records = [json.loads(p.read_text()) for p in (out / "results").rglob("*.json")]
    last_job = [record for record in records if record["repeat"] == 2]
    assert len(last_job) == 2 and not any(record["worker"]["pid"] == victim for record in last_job)  # died mid-job
    assert comparable_records(out) == comparable_records(reference)  # every run, the same numbers
    assert comparable_summary(out) == comparable_summary(reference)
    # the cluster's own environment says JAX: the driver's backend won
    assert {record["worker"]["versions"]["backend"] for record in records} == {"tensorflow"}


@NEEDS_RAY
@TF_ONLY
def test_ray_workers_read_a_streamed_file_from_its_path_with_the_local_numbers(ray_cluster, tmp_path):
    """Issue 22: a file over data.memory_limit is not shipped through the object store; every
    worker reads its chunks from the path (here, the one filesystem of this machine)."""
    import numpy as np

    from bilstm_cli.config.schema import DataConfig
    from bilstm_cli.data.generator import cumulative_sum_task
    from bilstm_cli.data.io import write_dataset
    from bilstm_cli.data.prepare import read_files
    from bilstm_cli.data.streamed import StreamedFile

    data = tmp_path / "big.csv"
    write_dataset(cumulative_sum_task(600, 8, rng=np.random.default_rng(5)), str(data), "csv")
    limit = ("--set", "data.memory_limit=500KB", "--set", "data.validation_split=0.25")
    assert isinstance(read_files(DataConfig(train_path=str(data), memory_limit="500KB")).train, StreamedFile)
    settings = ["--data", data, "--modes", "sum,concat", "--repeats", "2", *limit]
    settings += tiny_flags(epochs=3, samples_per_epoch=None, batch_size=16, validation_size=None, log_every=1, seed=4)
    local = run_bilstm("compare", *settings, "--out", tmp_path / "local", "--quiet")
    assert local.returncode == 0, local.stderr.decode()
    remote = run_bilstm(
        "compare", *settings, "--executor", "ray", "--address", ray_cluster, "--out", tmp_path / "ray", "--quiet",
        env=LOOPBACK_CLUSTER, timeout=300,
    )  # fmt: skip
    assert remote.returncode == 0, remote.stderr.decode()
    records = comparable_records(tmp_path / "ray")
    assert len(records) == 4 and records == comparable_records(tmp_path / "local")


# The driver is made to expect another numpy than its workers have: the workers, their hello
# and the check are the real ones, and no test hook is needed in the worker.
EXPECT_OTHER_NUMPY = (
    "import sys; import bilstm_cli.compare.execute as execute; real = execute.worker_versions; "
    "execute.worker_versions = lambda: {**real(), 'numpy': '0.0.1'}; "
    "from bilstm_cli.cli import main; main(sys.argv[1:], prog_name='bilstm')"
)


@NEEDS_RAY
@TF_ONLY
def test_mismatched_versions_are_refused(ray_cluster, tmp_path):
    import numpy as np

    out = tmp_path / "v"
    environment = {**os.environ, **LOOPBACK_CLUSTER}
    environment.pop("RAY_ADDRESS", None)
    result = subprocess.run(
        [sys.executable, "-c", EXPECT_OTHER_NUMPY, "compare", *SETTINGS, "--executor", "ray", "--address", "auto"]
        + ["--out", str(out), "--quiet"],
        capture_output=True,
        env=environment,
        timeout=300,
    )
    assert_clean_error(result, 2, "version mismatch", f"numpy {np.__version__}", "this process 0.0.1")
    assert list((out / "results").rglob("*.json")) == []  # refused before any run was written


@NEEDS_RAY
@TF_ONLY
def test_a_run_larger_than_any_node_is_refused(ray_cluster, tmp_path):
    result = run_bilstm(
        "compare", *SETTINGS, "--executor", "ray", "--address", ray_cluster, "--cpus-per-run", "3",
        "--out", tmp_path / "big", env=LOOPBACK_CLUSTER, timeout=120,
    )  # fmt: skip
    assert_clean_error(result, 2, "no node of the Ray cluster", "2 CPUs", "3 CPU for a run")
    assert not (tmp_path / "big").exists()


# ---------------------------------------------------------------------------- without a cluster


@NEEDS_RAY
@pytest.mark.parametrize(
    ("address", "needle"),
    [("127.0.0.1:1", "cannot reach the Ray cluster at 127.0.0.1:1"), ("head-without-port", "expected auto or HOST")],
)
def test_an_unreachable_address_fails_at_once(cli, tmp_path, address, needle):
    started = time.monotonic()
    result = cli("compare", *SETTINGS, "--executor", "ray", "--address", address, "--out", tmp_path / "c")
    assert_clean_error(result, 2, needle)
    assert time.monotonic() - started < 5
    assert not (tmp_path / "c").exists()


def test_without_ray_the_error_says_how_to_install_it(cli, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails, as without the package
    result = cli("compare", *SETTINGS, "--executor", "ray", "--out", tmp_path / "c")
    assert_clean_error(result, 2, "needs Ray", 'pip install "bilstm[ray]"')


@NEEDS_RAY
@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--cpus-per-run", "2"], ["--cpus-per-run: only for --executor ray"]),
        (["--executor", "ray", "--cpus-per-run", "0"], ["compare.cpus_per_run"]),
        (["--executor", "ray", "--gpus-per-run", "-1"], ["compare.gpus_per_run"]),
        (["--executor", "ray", "--device", "gpu"], ["needs --gpus-per-run"]),
    ],
)
def test_bad_ray_options(cli, tmp_path, monkeypatch, args, needles):
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.setattr("bilstm_cli.compare.ray_executor._connect", _no_cluster)
    result = cli("compare", *SETTINGS, *args, "--out", tmp_path / "c")
    assert_clean_error(result, 2, *needles)
    assert not (tmp_path / "c").exists()


def _no_cluster(address):
    raise AssertionError("the options should have been refused before connecting")


def test_version_check_and_resubmission_bookkeeping():
    from bilstm_cli.compare.plan import Job, Part
    from bilstm_cli.compare.ray_executor import _check_versions, _JobState
    from bilstm_cli.config.schema import DatasetSpec
    from bilstm_cli.config.variants import Variant
    from bilstm_cli.errors import UsageError

    mine = {"bilstm": "1.0", "numpy": "2.1.0", "python": "3.11.4"}
    _check_versions(mine, {"versions": {**mine, "python": "3.11.9"}, "host": "h", "pid": 1})  # patch level: fine
    with pytest.raises(UsageError, match=r"on h \(pid 1\) has numpy 2\.0\.0, this process 2\.1\.0"):
        _check_versions(mine, {"versions": {**mine, "numpy": "2.0.0"}, "host": "h", "pid": 1})
    with pytest.raises(UsageError, match="has keras missing"):
        _check_versions({**mine, "keras": "3.0"}, {"versions": mine, "host": "h", "pid": 1})

    job = Job(DatasetSpec(name="d"), [Part(Variant("a", {}), [0, 1, 2]), Part(Variant("b", {}), [0, 1])])
    state = _JobState(0, job)
    assert state.add({"variant": "a", "repeat": 1}) and not state.add({"variant": "a", "repeat": 1})
    for repeat in (0, 1):
        state.add({"variant": "b", "repeat": repeat})
    remaining = state.remaining()
    assert [(part.variant.name, part.repeats) for part in remaining.parts] == [("a", [0, 2])]
