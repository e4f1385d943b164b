"""Every command the README shows runs as written, in fresh results and experiments folders
(``RESDEG_RESULTS``, ``RESDEG_EXPERIMENTS``; the report's commands on a copy of the committed
results): each until it has shown that it does its work for real (a run's start line, with its
record written; a test session's collection; a benchmark's first measurement; a server's
address), then stopped as a user stops it (Ctrl-C), or to its end where that is short. A
command that cannot work here (ImageNet at /data/imagenet, a SLURM GPU partition) is held to
the one line that names the fix, or skipped with the reason."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO

README = (REPO / "README.md").read_text()


def readme_commands() -> list[str]:
    """Each line of the README's code blocks, and each command quoted inline, as written."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", README, re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    inline = [" ".join(c.split()) for c in re.findall(r"`((?:make|\.venv/bin/\w+) [^`]+)`", README)]
    return sorted({c for c in lines + inline if c and "*" not in c and "=..." not in c})


@dataclass
class Ran:
    returncode: int
    output: str
    stopped: bool  # stopped on its marker (else it ended by itself)


def as_in_a_terminal() -> None:
    """Ctrl-C as a terminal delivers it: a test session started in the background (``cmd &``)
    has SIGINT ignored, which its children would inherit."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start_as_written(command: str, env: dict) -> subprocess.Popen:
    """``command`` in bash from the repository root, in a process group of its own, output merged."""
    return subprocess.Popen(
        ["bash", "-c", command],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        preexec_fn=as_in_a_terminal,
    )


def run_as_written(command: str, env: dict, marker: str | None, stop=signal.SIGINT, timeout: float = 300) -> Ran:
    """``command`` in bash from the repository root; on the first output line matching ``marker``,
    ``stop`` is sent to its whole process group (a terminal's Ctrl-C)."""
    process = start_as_written(command, env)
    killer = threading.Timer(timeout, lambda: os.killpg(process.pid, signal.SIGKILL))
    killer.start()
    lines, stopped = [], False
    try:
        for line in process.stdout:
            lines.append(line)
            if marker and not stopped and re.search(marker, line):
                os.killpg(process.pid, stop)
                stopped = True
        process.wait()
    finally:
        killer.cancel()
    return Ran(process.returncode, "".join(lines), stopped)


@pytest.fixture
def outputs(tmp_path, cifar_root) -> dict:
    """The environment of a fresh clone with the real CIFAR-10 pointed at, writing nowhere in the repository."""
    jupyter = tmp_path / "jupyter"
    jupyter.mkdir()
    # CI runs as root, where Jupyter refuses to start unless allowed
    (jupyter / "jupyter_server_config.py").write_text(
        "c.ServerApp.allow_root = True\nc.ServerApp.open_browser = False\n"
    )
    return {
        **os.environ,
        "RESDEG_CIFAR_ROOT": str(cifar_root),
        "RESDEG_RESULTS": str(tmp_path / "results"),
        "RESDEG_EXPERIMENTS": str(tmp_path / "experiments"),
        "PYTHONUNBUFFERED": "1",
        "JUPYTER_CONFIG_DIR": str(jupyter),
        "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"),
    }


def records(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in results.rglob("summary.json")]


TRAINS = re.compile(
    r"^(make (train|sweep-(degradation|deep|budget|paper-20|shortcuts))\b|\.venv/bin/python -m resdeg\.train )"
)


RUN_STARTS = r"\] - \S+ seed \d+, protocol \S+: (starting|resuming at iteration \d+); record "


MEASURES = {
    "make bench": r"^\{'model': 'resnet-20', 'harness_img_s'",
    "make gpu-check": r"^\[gpu-check\] throughput: ",
    ".venv/bin/jupyter lab notebooks/explore_results.ipynb": r"http://(localhost|127\.0\.0\.1):\d+/lab",
}


COMPOSES = "--cfg job"


def how_tested(command: str) -> str | None:
    """Which test below runs ``command``: every README command has one."""
    if "LAUNCHER=slurm" in command:
        return "slurm"
    if command.startswith("make sweep-imagenet"):
        return "imagenet"
    if command.startswith("export RESDEG_CIFAR_ROOT="):
        return "data line"
    if command.endswith(COMPOSES):
        return "composes"
    if TRAINS.match(command):
        return "trains"
    if command in ("make test", "make test-fast"):
        return "test suite"
    if command in MEASURES:
        return "measures"
    if command in ("make figures tables", "make report"):
        return "report"
    return None


def test_the_readme_shows_the_main_commands():
    commands = readme_commands()
    for expected in ("make sweep-degradation", "make sweep-deep SEEDS=0,1,2,3,4", "make test", "make figures tables"):
        assert expected in commands
    assert len(commands) >= 20, commands
    untested = [c for c in commands if how_tested(c) is None]
    assert not untested, f"README commands no test below runs: {untested}"


def test_the_readme_config_command_prints_the_composed_config_as_written(outputs):
    (command,) = [c for c in readme_commands() if how_tested(c) == "composes"]
    ran = run_as_written(command, outputs, None)
    assert ran.returncode == 0 and "protocol:" in ran.output and "model:" in ran.output, ran.output[-3000:]


@pytest.mark.parametrize("command", [c for c in readme_commands() if how_tested(c) == "trains"])
def test_a_readme_training_command_trains_as_written_and_ctrl_c_stops_it_recorded(command, outputs):
    """It composes, finds the data, writes its record and starts its run; Ctrl-C then leaves
    one interrupted record (no failed one, no traceback) and a non-zero exit."""
    ran = run_as_written(command, outputs, RUN_STARTS)
    assert ran.stopped, ran.output[-3000:]
    assert ran.returncode != 0 and "Traceback" not in ran.output, ran.output[-3000:]
    (record,) = records(Path(outputs["RESDEG_RESULTS"]))
    assert record["status"] == "interrupted", record
    assert "run the same command again" in ran.output, ran.output[-3000:]


@pytest.mark.parametrize("command", ["make test", "make test-fast"])
def test_the_readme_test_commands_start_the_suite_as_written(command, outputs):
    """Stopped once pytest has collected (make test-fast has passed its formatter and linter by then),
    on one xdist worker (TEST_WORKERS from the environment, as make reads it): each worker
    collects the whole suite, and the other workers' collections would show nothing more."""
    env = {**outputs, "TEST_WORKERS": "1"}
    ran = run_as_written(command, env, r"^(collected \d+ items|\d+ workers? \[\d+ items\])")  # xdist: workers
    assert ran.stopped, ran.output[-3000:]


@pytest.mark.parametrize("command", sorted(MEASURES))
def test_the_readme_measuring_and_exploring_commands_start_as_written(command, outputs):
    """The benchmarks are stopped after their first measurement, the notebook server once it serves."""
    assert command in readme_commands()
    ran = run_as_written(
        command, outputs, MEASURES[command], stop=signal.SIGTERM if "jupyter" in command else signal.SIGINT
    )
    assert ran.stopped, ran.output[-3000:]
    assert "Traceback" not in ran.output, ran.output[-3000:]
    if "jupyter" not in command:  # Ctrl-C: one line that says what was written
        assert "stopped by Ctrl-C" in ran.output, ran.output[-3000:]


@pytest.mark.parametrize("command", ["make figures tables", "make report"])
def test_the_readme_report_commands_run_to_their_end_on_the_committed_results(command, outputs):
    """On a copy of results/: figures, tables, results/REPORT.md (and the notebook re-executed,
    put back as it was: the test must not change the committed file)."""
    assert command in readme_commands()
    results = Path(outputs["RESDEG_RESULTS"])
    shutil.copytree(REPO / "results", results, ignore=shutil.ignore_patterns("checkpoints"))
    for written in ("figures", "tables"):
        shutil.rmtree(results / written)
    (results / "REPORT.md").unlink()
    notebook = REPO / "notebooks" / "explore_results.ipynb"
    committed = notebook.read_bytes()
    try:
        ran = run_as_written(command, outputs, None, timeout=600)
    finally:
        notebook.write_bytes(committed)
    assert ran.returncode == 0, ran.output[-3000:]
    assert list((results / "figures").glob("*.png")) and list((results / "tables").glob("*.tex"))
    assert (results / "REPORT.md").is_file() == (command == "make report")


def test_the_readme_data_line_is_where_the_one_run_command_looks(outputs):
    """``export RESDEG_CIFAR_ROOT=/data/cifar10`` as written, then the README's one run: it looks
    there, and where nothing is there says so in one line that names the fix."""
    (export,) = [c for c in readme_commands() if c.startswith("export RESDEG_CIFAR_ROOT=")]
    root = export.split("=", 1)[1]
    if Path(root).exists():
        pytest.skip(f"{root} exists on this machine: the training tests cover a run that finds its data")
    run = next(c for c in readme_commands() if c.startswith(".venv/bin/python -m resdeg.train model."))
    ran = run_as_written(f"{export} && {run}", outputs, None)
    assert ran.returncode == 2 and "Traceback" not in ran.output, ran.output[-3000:]
    assert f"no CIFAR-10 found in {root}" in ran.output and "data.download=true" in ran.output, ran.output[-3000:]


def test_the_readme_imagenet_sweep_names_the_fix_where_there_is_no_imagenet(outputs):
    (command,) = [c for c in readme_commands() if c.startswith("make sweep-imagenet")]
    root = re.search(r"IMAGENET_ROOT=(\S+)", command).group(1)
    if Path(root).exists():
        pytest.skip(f"{root} exists on this machine: tests/integration/test_imagenet_runs.py trains on generated trees")
    ran = run_as_written(command, outputs, None)
    assert ran.returncode != 0 and "Traceback" not in ran.output, ran.output[-3000:]
    assert f"no ImageNet found at {root}" in ran.output and "RESDEG_IMAGENET_ROOT" in ran.output, ran.output[-3000:]
    assert not records(Path(outputs["RESDEG_RESULTS"]))


@pytest.mark.parametrize("command", [c for c in readme_commands() if "LAUNCHER=slurm" in c])
def test_the_readme_slurm_commands_submit_as_written(command, outputs, slurm):
    """On the tests' real one-node SLURM (tests/slurm_cluster.py: a partition named ``cpu``, no
    GPU): the CPU-only command submits the sweep's job array and its first job starts its run;
    then the sweep is stopped and its jobs cancelled."""
    from test_slurm import job_log

    if "gpus_per_node=0" not in command:
        pytest.skip("needs a SLURM cluster with a partition named gpu and GPUs (the tests' cluster has neither)")
    env = {**outputs, **slurm.env}
    tmp = Path(outputs["RESDEG_RESULTS"]).parent
    process = start_as_written(command, env)
    try:
        deadline = time.monotonic() + 240
        started = None
        while started is None and time.monotonic() < deadline:
            log = job_log(tmp, 0)
            started = log and re.search(RUN_STARTS, log.read_text(errors="replace"))
            assert process.poll() is None, process.stdout.read()[-3000:]
            time.sleep(0.2)
        assert started, "no job of the sweep started its run within 240 s"
    finally:
        os.killpg(process.pid, signal.SIGINT)
        subprocess.run(["scancel", "--full", f"--user={os.getuid()}"], env=slurm.env)
        process.communicate(timeout=120)
