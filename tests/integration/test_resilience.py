"""Runs that survive: exact resume after SIGKILL, SIGTERM pre-emption, divergence."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO, paths, run_cli, train_here, write_cifar_folder
from resdeg import ResdegError

# ResNet-8 (the smallest of the family: what is tested is the run, not the net) on a small
# CIFAR-10 in the real files' layout (conftest.small_cifar: 1000 training images, 250 test images),
# batch 32 (an epoch is 31 iterations: every checkpoint is mid-epoch).
SHORT = [
    "model.depth=8",
    "protocol=cifar_quick",
    "protocol.batch_size=32",
    "protocol.iterations=24",
    "protocol.log_every=5",
    "protocol.eval_every=12",
    "protocol.checkpoint_every=4",
    "protocol.schedule.warmup_iterations=6",
    "protocol.schedule.milestones=[16,20]",
    "trainer.deterministic=true",
    "layer_responses=false",  # Fig. 7's pass over the test set: tested in test_report, not needed here
]


def only_record(tmp: Path) -> Path:
    (folder,) = (tmp / "results").glob("runs/*/*/")
    return folder


def start_run(tmp: Path, small_cifar, *extra: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "resdeg.train", *SHORT, *paths(tmp), *extra],
        cwd=REPO,
        env={**os.environ, "RESDEG_CIFAR_ROOT": str(small_cifar), "PYTHONUNBUFFERED": "1", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def run_here(tmp: Path, small_cifar, *extra: str, settings: tuple[str, ...] = tuple(SHORT)) -> str:
    """The run ``start_run`` starts, trained in this process (conftest.train_here): for the twins
    and the resumes after a kill. Returns what it logged; a refusal raises its ResdegError."""
    return train_here(*settings, *paths(tmp), *extra, env={"RESDEG_CIFAR_ROOT": str(small_cifar)})


def wait_for_checkpoint(tmp: Path, at_least: int, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        steps = [int(p.stem.split("step=")[1]) for p in (tmp / "experiments").rglob("*step=*.ckpt")]
        if steps and max(steps) >= at_least:
            return
        assert process.poll() is None, process.stdout.read()[-3000:]
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared")


def read_until(process: subprocess.Popen, text: str, timeout: float = 300) -> str:
    """The run's output up to the first line holding ``text`` (or its end): the moment to signal it."""
    deadline, lines = time.time() + timeout, []
    while time.time() < deadline:
        lines.append(process.stdout.readline())
        if text in lines[-1] or not lines[-1]:
            break
    return "".join(lines)


def start_held_in_evaluation(tmp: Path, small_cifar, iteration: int, *extra: str) -> tuple[subprocess.Popen, Path]:
    """A run that stops inside its evaluation of ``iteration`` (its checkpoints of that
    iteration written) until the returned marker file is deleted (tests/hold_evaluation/)."""
    marker = tmp / f"in-evaluation-{iteration}"
    env = {
        "RESDEG_TEST_HOLD_EVALUATION": f"{iteration}:{marker}",
        "PYTHONPATH": os.pathsep.join([str(REPO / "tests" / "hold_evaluation"), os.environ.get("PYTHONPATH", "")]),
    }
    process = start_run(tmp, small_cifar, *extra, env=env)
    deadline = time.time() + 300
    while not marker.is_file():
        assert process.poll() is None and time.time() < deadline, process.stdout.read()[-3000:]
        time.sleep(0.02)
    return process, marker


def kill_during_the_evaluation_of(victim: Path, small_cifar, iteration: int, *extra: str) -> None:
    """SIGKILL a run inside the evaluation of ``iteration``, after its checkpoints of that iteration."""
    process, _ = start_held_in_evaluation(victim, small_cifar, iteration, *extra)
    process.send_signal(signal.SIGKILL)
    process.wait()


@pytest.fixture(scope="module")
def twin_record(small_cifar, tmp_path_factory) -> Path:
    """The record of the uninterrupted run that every killed-and-resumed run must equal (once per
    pytest-xdist worker: in this process it trains in seconds)."""
    twin = tmp_path_factory.mktemp("twin")
    run_here(twin, small_cifar)
    return only_record(twin)


def sorted_history(record: Path) -> pd.DataFrame:
    return pd.read_csv(record / "history.csv").sort_values(["iteration", "split", "metric"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def twin_history(twin_record) -> pd.DataFrame:
    return sorted_history(twin_record)


def test_sigkill_mid_epoch_then_resume_matches_the_uninterrupted_twin(small_cifar, tmp_path, twin_history, twin_record):

    victim = tmp_path / "victim"
    process = start_run(victim, small_cifar)
    wait_for_checkpoint(victim, 8, process)  # past the first log interval, between intervals
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed = json.loads((only_record(victim) / "summary.json").read_text())
    assert killed["status"] == "running" and killed["iteration"] < 24

    resumed = run_cli(*SHORT, *paths(victim), env={"RESDEG_CIFAR_ROOT": str(small_cifar)})
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "resuming at iteration" in resumed.stdout + resumed.stderr
    # Lightning's resume warnings, false for this harness (console.quiet_libraries), are not printed
    assert "not resumable" not in resumed.stdout + resumed.stderr
    assert "exists and is not empty" not in resumed.stdout + resumed.stderr
    summary = json.loads((only_record(victim) / "summary.json").read_text())
    # last.ckpt is written just after the step file, so the kill may find it one checkpoint back (4)
    assert summary["status"] == "complete" and 4 <= summary["resumed_at_iterations"][0] <= killed["iteration"] + 4
    got = pd.read_csv(only_record(victim) / "history.csv")
    pd.testing.assert_frame_equal(
        got.sort_values(["iteration", "split", "metric"]).reset_index(drop=True), twin_history
    )
    assert (only_record(victim) / "signals.csv").read_text() == (twin_record / "signals.csv").read_text()


def test_kill_during_the_evaluation_of_a_checkpoint_iteration_or_a_cut_last_ckpt_loses_nothing(
    small_cifar, tmp_path, twin_history
):
    """The checkpoint of iteration 12 is written just before the evaluation at 12: a run
    killed during that evaluation resumes owing it and redoes it; a last.ckpt cut short
    (a full disk) is passed over for the periodic checkpoint beside it. Both histories equal
    the uninterrupted twin's."""
    expected = twin_history

    # (a) killed during the evaluation at 12, after last.ckpt of iteration 12 was written
    victim = tmp_path / "during_eval"
    kill_during_the_evaluation_of(victim, small_cifar, 12)
    killed = pd.read_csv(only_record(victim) / "history.csv")
    assert killed.query("split == 'test' and iteration == 12").empty  # the kill landed inside the evaluation
    run_here(victim, small_cifar)
    summary = json.loads((only_record(victim) / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["resumed_at_iterations"] == [12]
    got = pd.read_csv(only_record(victim) / "history.csv").sort_values(["iteration", "split", "metric"])
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected)

    # (b) last.ckpt cut short: the periodic checkpoint beside it is used, and said so
    victim = tmp_path / "cut"
    process = start_run(victim, small_cifar)
    wait_for_checkpoint(victim, 16, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    (last,) = (victim / "experiments").rglob("last.ckpt")
    last.write_bytes(last.read_bytes()[:1000])
    output = run_here(victim, small_cifar)
    assert "cannot read last.ckpt" in output and "resuming from epoch=0-step=" in output
    got = pd.read_csv(only_record(victim) / "history.csv").sort_values(["iteration", "split", "metric"])
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected)

    # (c) no readable checkpoint at all: refused, not silently restarted (force=true starts afresh)
    for checkpoint in (victim / "experiments").rglob("*.ckpt"):
        checkpoint.write_bytes(b"cut")
    (victim / "results" / summary_path(victim)).write_text(
        (victim / "results" / summary_path(victim)).read_text().replace('"complete"', '"interrupted"')
    )
    with pytest.raises(ResdegError, match="no checkpoint of this run can be read"):
        run_here(victim, small_cifar)


def test_the_evaluation_a_resumed_run_owes_is_made_in_the_runs_precision(small_cifar, tmp_path):
    """Under bf16-mixed (CPU autocast has bf16), a run killed during the evaluation of its
    checkpoint iteration redoes it on resume, before training: in the same autocast as Lightning's
    own validation loop, so its rows equal the uninterrupted twin's (in fp32 they differed)."""
    bf16 = ["trainer.precision=bf16-mixed", "gradient_signals=false"]
    run_here(tmp_path / "twin", small_cifar, *bf16)
    victim = tmp_path / "victim"
    kill_during_the_evaluation_of(victim, small_cifar, 12, *bf16)
    assert pd.read_csv(only_record(victim) / "history.csv").query("split == 'test' and iteration == 12").empty
    run_here(victim, small_cifar, *bf16)
    assert json.loads((only_record(victim) / "summary.json").read_text())["resumed_at_iterations"] == [12]
    pd.testing.assert_frame_equal(sorted_history(only_record(victim)), sorted_history(only_record(tmp_path / "twin")))


def test_a_kill_during_the_final_evaluation_loses_neither_the_last_interval_nor_a_signal(
    small_cifar, tmp_path, twin_record, twin_history
):
    """last.ckpt of the last iteration (24) is written before the final evaluation, with the
    interval 20-24 still open (it closes at the end of training). Killed during that evaluation,
    the run resumes at 24 and trains no batch, so Lightning calls no on_train_end: the interval's
    training rows and the signals of iteration 24 are recorded after the fit instead. History
    and signals equal the uninterrupted twin's, row for row."""
    victim = tmp_path / "final_eval"
    kill_during_the_evaluation_of(victim, small_cifar, 24)
    killed = pd.read_csv(only_record(victim) / "history.csv")
    assert killed.query("iteration == 24").empty  # the kill landed inside the final evaluation
    run_here(victim, small_cifar)
    summary = json.loads((only_record(victim) / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["resumed_at_iterations"] == [24]
    pd.testing.assert_frame_equal(sorted_history(only_record(victim)), twin_history)
    twin_summary = json.loads((twin_record / "summary.json").read_text())
    assert summary["final"] == twin_summary["final"]
    assert (only_record(victim) / "signals.csv").read_text() == (twin_record / "signals.csv").read_text()


def test_the_signal_probe_changes_no_training(small_cifar, tmp_path, twin_record, twin_history):
    """Section 4.1's probe (a training-mode forward and backward on a fixed batch at every
    evaluation) leaves the run as it was: without it the history is the same, to the digit."""
    output = run_here(tmp_path, small_cifar, "gradient_signals=false")
    assert not (only_record(tmp_path) / "signals.csv").exists()
    pd.testing.assert_frame_equal(sorted_history(only_record(tmp_path)), twin_history)
    signals = pd.read_csv(twin_record / "signals.csv")
    assert sorted(signals.iteration.unique()) == [0, 12, 24]  # iteration 0, each evaluation, the last
    assert (signals.groupby("iteration").layer.apply(list) == [list(range(1, 8))] * 3).all()
    summary = json.loads((twin_record / "summary.json").read_text())
    assert summary["signal_measurements"] == 3 and summary["signals_seconds"] > 0
    # the run said what it costs, from this machine's pace, and the record keeps the pace
    assert "training images/s on this machine; expected" in output
    assert "evaluations of 250 images, " in output
    assert summary["train_images_per_s"] > 0 and summary["timed_iterations"] == 24 - 5


def test_a_run_with_its_checkpoint_in_the_results_tree_resumes_exactly_from_a_fresh_clone(
    small_cifar, tmp_path, twin_history
):
    """paths.checkpoints=results/checkpoints (make sweep-paper-20): last.ckpt lies in the tracked
    tree (the project's .gitignore leaves the periodic one out); committed while in flight and
    cloned onto a "fresh machine" (no experiments/ folder), the same command resumes it exactly,
    and the completed run removes its checkpoints."""
    origin, clone = tmp_path / "origin", tmp_path / "clone"
    kill_during_the_evaluation_of(origin, small_cifar, 12, f"paths.checkpoints={origin / 'results' / 'checkpoints'}")
    (origin / ".gitignore").write_text((REPO / ".gitignore").read_text())
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    for command in (["init", "-q"], ["add", "results", ".gitignore"], ["commit", "-qm", "in flight"]):
        subprocess.run([*git, *command], cwd=origin, check=True)
    committed = subprocess.run(["git", "ls-files", "results/checkpoints"], cwd=origin, capture_output=True, text=True)
    assert [Path(p).name for p in committed.stdout.split()] == ["last.ckpt"]
    subprocess.run([*git, "clone", "-q", str(origin), str(clone)], check=True)
    assert not (clone / "experiments").exists()
    output = run_here(clone, small_cifar, f"paths.checkpoints={clone / 'results' / 'checkpoints'}")
    assert "resuming at iteration 12" in output
    pd.testing.assert_frame_equal(sorted_history(only_record(clone)), twin_history)
    assert json.loads((only_record(clone) / "summary.json").read_text())["status"] == "complete"
    assert not list((clone / "results" / "checkpoints").rglob("*.ckpt"))  # removed once complete
    assert "its checkpoints in the results tree" in output


def summary_path(tmp: Path) -> Path:
    return only_record(tmp).relative_to(tmp / "results") / "summary.json"


@pytest.mark.parametrize(
    "sent,says",
    [
        (signal.SIGTERM, "SIGTERM received: stopped at iteration"),
        (signal.SIGUSR2, "SIGUSR2 received: stopped at iteration"),
        (signal.SIGINT, "Ctrl-C received: stopped at iteration"),
    ],
    ids=["sigterm", "sigusr2", "ctrl-c"],
)
def test_a_stopped_run_is_recorded_interrupted_and_says_how_to_resume(small_cifar, tmp_path, sent, says):
    """SIGTERM (pre-emption), SIGUSR2 (submitit's warning) and Ctrl-C save last.ckpt at the
    current iteration; the record is "interrupted", never "failed"."""
    process = start_run(tmp_path, small_cifar, "protocol.iterations=400")
    wait_for_checkpoint(tmp_path, 4, process)
    process.send_signal(sent)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 2, output[-3000:]
    assert says in output and "run the same command again to resume" in output
    summary = json.loads((only_record(tmp_path) / "summary.json").read_text())
    assert summary["status"] == "interrupted" and 4 <= summary["interrupted_at"] < 400
    assert list((tmp_path / "experiments" / "checkpoints").rglob("last.ckpt"))


def test_a_checkpoint_written_on_another_kind_of_device_is_refused_and_the_record_kept(small_cifar, tmp_path):
    """A run is one run: its checkpoint says the device it was written on (cpu here), and one
    edited to say cuda, as a GPU run's would, is not continued on this CPU (another crop/flip
    stream): one message, exit 2, the record still interrupted with its checkpoint."""
    import torch

    process = start_run(tmp_path, small_cifar, "protocol.iterations=400")
    wait_for_checkpoint(tmp_path, 4, process)
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=120)
    (last,) = (tmp_path / "experiments" / "checkpoints").rglob("last.ckpt")
    checkpoint = torch.load(last, map_location="cpu", weights_only=False)
    assert checkpoint["resdeg"]["device"] == "cpu"
    checkpoint["resdeg"]["device"] = "cuda"
    torch.save(checkpoint, last)
    with pytest.raises(ResdegError, match="was written on cuda, and this run would go on on cpu") as refused:
        run_here(tmp_path, small_cifar, "protocol.iterations=400")
    assert "\n" not in str(refused.value) and last.is_file()
    assert json.loads((only_record(tmp_path) / "summary.json").read_text())["status"] == "interrupted"


def test_a_signal_submitit_also_handles_is_handed_on_only_after_the_checkpoint():
    """submitit's handler requeues the job and exits at once; the run's handler takes the
    signal first (the checkpoint is saved at the end of the iteration) and hands it on after."""
    from resdeg.training.preemption import PreemptionCheckpoint, preemption_signals

    handed = []

    def submitits(signum, frame):
        handed.append(signum)

    before = signal.signal(signal.SIGUSR2, submitits)
    try:
        preemption = PreemptionCheckpoint("last.ckpt")
        preemption.install()
        os.kill(os.getpid(), signal.SIGUSR2)
        assert preemption.received == signal.SIGUSR2 and handed == []
        assert preemption.next_handler() is submitits
        preemption.restore()
        assert signal.getsignal(signal.SIGUSR2) is submitits
    finally:
        signal.signal(signal.SIGUSR2, before)
    alone = PreemptionCheckpoint("last.ckpt")  # Python's default before: nothing to hand on to
    alone.install()
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        assert alone.received == signal.SIGTERM and alone.next_handler() is None
    finally:
        alone.restore()
    # SUBMITIT_PREEMPT_SIGNAL names submitit's warning signal, which is then handled too
    assert preemption_signals({"SUBMITIT_PREEMPT_SIGNAL": "HUP"}) == (
        signal.SIGTERM,
        signal.SIGUSR1,
        signal.SIGUSR2,
        signal.SIGHUP,
        signal.SIGINT,
        signal.SIGPIPE,
    )
    # Ctrl-C: the first is taken like the others (Python's handler is not handed on: the run has
    # stopped), a second stops at once; a SIGPIPE while the output's reader is alive is not a stop.
    # Python's own Ctrl-C handler first, as in a terminal (a session started with `&` ignores SIGINT)
    session = signal.signal(signal.SIGINT, signal.default_int_handler)
    ctrl_c = PreemptionCheckpoint("last.ckpt")
    ctrl_c.install()
    try:
        os.kill(os.getpid(), signal.SIGPIPE)
        assert ctrl_c.received is None
        os.kill(os.getpid(), signal.SIGINT)
        assert ctrl_c.received == signal.SIGINT and ctrl_c.next_handler() is None
        ctrl_c.on_validation_start(None, None)  # Lightning's hooks re-register: not the second Ctrl-C's
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    finally:
        ctrl_c.restore()
        restored = signal.signal(signal.SIGINT, session)
    assert restored is signal.default_int_handler


def test_a_run_stopped_before_its_first_periodic_checkpoint_keeps_one_last_ckpt_when_resumed(small_cifar, tmp_path):
    """SIGTERM at iteration ~5, before the checkpoint of 12: last.ckpt is the pre-emption one.
    The resumed run's checkpoints then overwrite it (never a last-v1.ckpt beside a stale
    last.ckpt, which the next resume would have taken)."""
    process = start_run(tmp_path, small_cifar, "protocol.checkpoint_every=12")
    read_until(process, "it 5/24")
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=120)[0]
    assert process.returncode == 2, output[-3000:]
    interrupted_at = json.loads((only_record(tmp_path) / "summary.json").read_text())["interrupted_at"]
    assert interrupted_at < 12
    assert f"resuming at iteration {interrupted_at}" in run_here(tmp_path, small_cifar, "protocol.checkpoint_every=12")
    names = sorted(p.name for p in (tmp_path / "experiments" / "checkpoints").rglob("*.ckpt"))
    assert names == ["epoch=0-step=24.ckpt", "last.ckpt"], names  # the latest periodic one and last


def test_a_kill_without_warning_costs_at_most_checkpoint_minutes(small_cifar, tmp_path, twin_history):
    """checkpoint_minutes=0 writes last.ckpt at every iteration's end. With no periodic
    checkpoint in the run (checkpoint_every=100 > 24 iterations), a SIGKILL at iteration 10
    resumes from where it was killed (at most one iteration back), not from scratch, and writes its twin's history."""
    extra = ("protocol.checkpoint_every=100", "checkpoint_minutes=0")
    process = start_run(tmp_path, small_cifar, *extra)
    read_until(process, "it 10/24")
    process.send_signal(signal.SIGKILL)
    process.wait()
    run_here(tmp_path, small_cifar, *extra)
    summary = json.loads((only_record(tmp_path) / "summary.json").read_text())
    # iteration 10 is printed before its checkpoint is written: the kill may find the one of 9
    assert summary["status"] == "complete" and summary["resumed_at_iterations"][0] >= 9, summary
    names = sorted(p.name for p in (tmp_path / "experiments" / "checkpoints").rglob("*.ckpt"))
    assert names == ["last.ckpt"], names  # saved by time only, one file
    got = pd.read_csv(only_record(tmp_path) / "history.csv")
    pd.testing.assert_frame_equal(
        got.sort_values(["iteration", "split", "metric"]).reset_index(drop=True), twin_history
    )


def test_nan_loss_marks_the_run_diverged_and_the_sweep_goes_on(small_cifar, tmp_path):
    # lr 1e8 makes the loss of the first run overflow for real; the second run is sane
    result = run_cli(
        "--multirun",
        *SHORT,
        *paths(tmp_path),
        "protocol.iterations=10",
        "protocol.schedule.base_lr=1e8,0.05",
        env={"RESDEG_CIFAR_ROOT": str(small_cifar)},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    statuses = sorted(json.loads(p.read_text())["status"] for p in (tmp_path / "results").rglob("summary.json"))
    assert statuses == ["complete", "diverged"]
    diverged = next(
        json.loads(p.read_text())
        for p in (tmp_path / "results").rglob("summary.json")
        if json.loads(p.read_text())["status"] == "diverged"
    )
    assert diverged["diverged_at"] in (5, 10) and "diverged" in diverged["message"]


# a two-iteration run of ResNet-8 on a CIFAR-10 of 200 images (conftest.write_cifar_folder)
TWO_ITERATIONS = (
    "model.depth=8",
    "protocol=cifar_quick",
    "protocol.iterations=2",
    "protocol.log_every=1",
    "protocol.eval_every=2",
    "protocol.schedule.warmup_iterations=1",
    "protocol.batch_size=20",
)


def test_a_run_training_now_cannot_be_launched_twice(tmp_path):
    from resdeg.record.lock import RunLock

    first = RunLock(tmp_path)
    first.acquire()
    try:
        with pytest.raises(ResdegError, match=f"being trained right now by process {os.getpid()}"):
            RunLock(tmp_path).acquire()
    finally:
        first.release()
    # a lock left by a dead process (SIGKILL) is stale and taken over
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import platform

    (tmp_path / "run.lock").write_text(f"{platform.node()} {dead.stdout.strip()}\n")
    lock = RunLock(tmp_path)
    lock.acquire()
    assert lock.held
    lock.release()


def test_a_full_disk_while_taking_the_lock_leaves_no_lock_and_an_empty_lock_is_taken_over(tmp_path, monkeypatch):
    import errno

    from resdeg.record.lock import RunLock

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(os, "fsync", no_space)  # the write of host and pid fails, as on a full disk
        with pytest.raises(ResdegError, match="is full .* free space there"):
            RunLock(tmp_path).acquire()
    assert list(tmp_path.iterdir()) == []  # no lock, no temporary file
    (tmp_path / "run.lock").write_text("")  # an empty lock, as an older version could leave
    lock = RunLock(tmp_path)
    lock.acquire()
    assert lock.held and (tmp_path / "run.lock").read_text().split()[1] == str(os.getpid())
    lock.release()


@pytest.mark.parametrize("content", ["null", "[]", "{}"])
def test_a_summary_that_is_not_a_record_is_skipped_by_the_report_and_never_replaced(tmp_path, content):
    from resdeg.report.load import load_results

    data = write_cifar_folder(tmp_path / "data")
    run_here(tmp_path, data, settings=TWO_ITERATIONS)
    summary = only_record(tmp_path) / "summary.json"
    checkpoints = sorted((tmp_path / "experiments" / "checkpoints").rglob("*.ckpt"))
    summary.write_text(content)
    results = load_results(tmp_path / "results")
    assert (
        results.runs.empty
        and "not a run record" in results.problems[0]
        and only_record(tmp_path).name in results.problems[0]
    )
    with pytest.raises(ResdegError, match="not a run record"):
        run_here(tmp_path, data, settings=TWO_ITERATIONS)
    assert summary.read_text() == content  # refused, not replaced
    assert sorted((tmp_path / "experiments" / "checkpoints").rglob("*.ckpt")) == checkpoints  # nothing deleted


def test_record_files_are_readable_by_others_and_leftover_temporary_files_go(tmp_path):
    from resdeg.record import write_atomic

    (tmp_path / ".summary.json.abc123.tmp").write_text("left by a writer killed mid-write")
    old_mask = os.umask(0o022)
    try:
        write_atomic(tmp_path / "summary.json", "{}")
    finally:
        os.umask(old_mask)
    assert (tmp_path / "summary.json").stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_unwritable_results_folder_names_the_fix(tmp_path):
    (tmp_path / "results").write_text("a file where the results folder should be")
    with pytest.raises(ResdegError, match="cannot write the run record") as refused:
        run_here(tmp_path, write_cifar_folder(tmp_path / "data"), settings=("model.depth=8",))
    assert "paths.results" in str(refused.value)


def test_a_torn_record_of_this_run_is_named_not_overwritten(tmp_path):
    data = write_cifar_folder(tmp_path / "data")
    run_here(tmp_path, data, settings=TWO_ITERATIONS)
    summary = only_record(tmp_path) / "summary.json"
    summary.write_text(summary.read_text()[:50])
    with pytest.raises(ResdegError, match="unreadable") as refused:
        run_here(tmp_path, data, settings=TWO_ITERATIONS)
    assert "force=true" in str(refused.value)
    assert len(summary.read_text()) == 50  # left as it was for the user to look at
    run_here(tmp_path, data, "force=true", settings=TWO_ITERATIONS)
    assert json.loads(summary.read_text())["status"] == "complete"


def test_downloaded_archive_with_wrong_checksum_is_removed(tmp_path, monkeypatch):
    import functools
    import http.server
    import threading

    from resdeg.data import cifar10_files

    served = tmp_path / "server" / "cifar-10-python.tar.gz"
    served.parent.mkdir()
    served.write_bytes(b"not the official archive")
    # a real HTTP download through torchvision's utility, from a server on this machine
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(cifar10_files, "OFFICIAL_URL", f"http://127.0.0.1:{server.server_port}/{served.name}")
        with pytest.raises(ResdegError, match="md5"):
            cifar10_files.load_cifar10(tmp_path / "root", download=True)
    finally:
        server.shutdown()
    assert not (tmp_path / "root" / "cifar-10-python.tar.gz").exists()


def test_sigterm_during_the_final_evaluation_is_honoured_and_the_run_resumes_to_complete(small_cifar, tmp_path):
    """A signal that lands in the evaluation of the last iteration (after the loop's last
    training step) still ends in last.ckpt and an interrupted record, not a record left running;
    the same command then redoes that evaluation and completes the run."""
    extra = ["protocol.iterations=12", "protocol.eval_every=12"]
    process, marker = start_held_in_evaluation(tmp_path, small_cifar, 12, *extra)
    process.send_signal(signal.SIGTERM)  # inside the evaluation of the last iteration, for certain
    marker.unlink()
    output = process.communicate(timeout=120)[0]
    assert process.returncode == 2, output[-3000:]
    assert "SIGTERM received: stopped at iteration 12" in output
    summary = json.loads((only_record(tmp_path) / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["interrupted_at"] == 12
    assert list((tmp_path / "experiments" / "checkpoints").rglob("last.ckpt"))
    run_here(tmp_path, small_cifar, *extra)
    summary = json.loads((only_record(tmp_path) / "summary.json").read_text())
    assert (
        summary["status"] == "complete"
        and summary["resumed_at_iterations"] == [12]
        and "test_error" in summary["final"]
    )


def test_a_small_tmpdir_does_not_stop_checkpointing(small_cifar, tmp_path, small_disk):
    """A cluster node's small local /tmp: checkpoints are staged beside their destination, not
    in TMPDIR (Lightning's writer staged them there and failed with a bare Errno 28)."""
    tmpdir = small_disk("256k", "tmpdir")
    process = start_run(tmp_path, small_cifar, env={"TMPDIR": str(tmpdir)})
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output[-3000:]
    assert json.loads((only_record(tmp_path) / "summary.json").read_text())["status"] == "complete"


def test_a_full_checkpoint_disk_interrupts_the_run_in_one_line_and_the_relaunch_resumes_exactly(
    small_cifar, tmp_path, small_disk, twin_history
):
    """Room for two checkpoints of ResNet-8 (0.63 MB each) but not a third: the third is refused
    with one line naming the folder, the record is interrupted (not failed), the last.ckpt
    before it intact; once space is freed the same command resumes and ends equal to the twin."""
    from conftest import remount

    disk = small_disk("1600k", "checkpoints")
    process = start_run(tmp_path, small_cifar, f"paths.checkpoints={disk}")
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 2, output[-3000:]
    assert f"cannot write a checkpoint in {disk}" in output and "No space left on device" in output
    assert "Traceback" not in output and "paths.checkpoints=" in output
    summary = json.loads((only_record(tmp_path) / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["interrupted_at"] < 24
    assert not list(disk.rglob("*.tmp"))  # the refused write left nothing behind
    remount(disk, "size=64m")
    assert "resuming at iteration" in run_here(tmp_path, small_cifar, f"paths.checkpoints={disk}")
    pd.testing.assert_frame_equal(sorted_history(only_record(tmp_path)), twin_history)


def test_a_read_only_checkpoint_disk_is_refused_before_anything_is_recorded(small_cifar, tmp_path, small_disk):
    from conftest import remount

    disk = small_disk("16m", "checkpoints")
    remount(disk, "ro")
    process = start_run(tmp_path, small_cifar, f"paths.checkpoints={disk}")
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 2, output[-3000:]
    assert f"cannot write a checkpoint in {disk}" in output and "Read-only file system" in output
    assert "Traceback" not in output
    assert not list((tmp_path / "results").rglob("summary.json"))  # nothing recorded


def test_a_failure_while_building_the_trainer_leaves_no_record_running(tmp_path):
    result = run_cli(
        f"data.root={write_cifar_folder(tmp_path / 'data')}",
        "model.depth=8",
        "protocol.iterations=2",
        "+trainer.no_such_option=1",
        *paths(tmp_path),
    )
    assert result.returncode != 0
    summary = json.loads((only_record(tmp_path) / "summary.json").read_text())
    assert summary["status"] == "failed" and "before training" in summary["message"]
