"""What a run prints (resdeg.console, resdeg.training.progress): one line when it starts, one
when it ends, compact progress lines off a terminal, no line twice, no library noise."""

import contextlib
import io
import os
import re

import pandas as pd
import pytest

from conftest import run_cli
from resdeg.training.progress import IterationProgressBar, IterationProgressLines, progress_callback


def test_a_short_run_prints_each_line_once_and_no_library_noise(cifar_root, tmp_path):
    # an srun on the PATH, as on every cluster login node: Lightning's hint to use it is noise here
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "srun").write_text("#!/bin/sh\nexit 1\n")
    (tmp_path / "bin" / "srun").chmod(0o755)
    result = run_cli(
        "model.depth=8",
        "protocol=cifar_quick",
        "protocol.iterations=8",
        "protocol.batch_size=32",
        "protocol.schedule.warmup_iterations=2",
        "protocol.checkpoint_every=8",
        "protocol.eval_every=4",
        "protocol.log_every=4",
        "data.eval_batch_size=1000",
        f"data.root={cifar_root}",
        f"paths.results={tmp_path / 'r'}",
        f"paths.experiments={tmp_path / 'e'}",
        env={"PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}"},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    # Hydra stamps each log line with the time; the same message twice is a duplicated handler
    lines = [re.sub(r"^\[[^]]*\]", "", line).strip() for line in (result.stdout + result.stderr).splitlines()]
    lines = [line for line in lines if line]
    assert len(lines) == len(set(lines)), "\n".join(lines)
    output = "\n".join(lines)
    for noise in ("deprecated", "Tip:", "GPU available", "TPU available", "max_steps=", "srun"):
        assert noise not in output, output
    starts = [line for line in lines if "starting; record" in line]
    ends = [line for line in lines if ": complete (error: " in line]
    assert len(starts) == 1 and "resnet-8-A seed 0, protocol quick-8" in starts[0] and "W&B off" in starts[0]
    assert len(ends) == 1 and "train " in ends[0] and "test " in ends[0] and " min " in ends[0]
    # not a terminal (captured): progress as lines, every log_every iterations, each with the
    # loss and errors of its own iteration (as the record has them), not those of the last line
    (shown,) = [
        re.search(r"resnet-8-A it 4/8 \([0-9.]+ it/s\): loss ([0-9.]+), train_err ([0-9.]+), test_err ([0-9.]+)$", line)
        for line in lines
        if "it 4/8" in line
    ]
    (record,) = (tmp_path / "r").glob("runs/*/*/history.csv")
    history = pd.read_csv(record).set_index(["iteration", "split", "metric"]).value
    assert shown, output
    assert [float(v) for v in shown.groups()] == [
        round(history[4, "train", "loss"], 2),
        round(history[4, "train", "error"], 2),
        round(history[4, "test", "error"], 2),
    ]
    assert any(re.search(r"resnet-8-A it 8/8 \([0-9.]+ it/s\)$", line) for line in lines), output
    assert "\r" not in result.stderr


class _Stream(io.StringIO):
    def __init__(self, tty: bool):
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_progress_is_a_bar_on_a_terminal_and_lines_elsewhere():
    assert isinstance(progress_callback("x", 10, _Stream(True)), IterationProgressBar)
    # jobs of a parallel sweep share the launching terminal: lines, never bars redrawn over each other
    assert isinstance(progress_callback("x", 10, _Stream(True), parallel=True), IterationProgressLines)
    lines = progress_callback("x", 10, _Stream(False))
    assert isinstance(lines, IterationProgressLines) and lines.every == 10


def test_the_bar_on_a_terminal_draws_no_evaluation_bar():
    """An evaluation bar made enabled draws "Validation: 0/?" at once, a line that stays under
    the run's bar for the whole run."""
    drawn = io.StringIO()
    with contextlib.redirect_stdout(drawn), contextlib.redirect_stderr(drawn):
        bar = IterationProgressBar("x", 10)
        bars = [bar.init_validation_tqdm(), bar.init_test_tqdm()]
    assert drawn.getvalue() == "" and all(b.disable for b in bars)


@pytest.mark.parametrize("eval_every", [8, 5])
def test_the_bar_ends_on_the_values_of_the_runs_closing_line(tmp_path, eval_every):
    """The last interval (iterations 7-8 at log_every=3) closes after the loop: the bar's last
    values are its training error and loss, not those of iteration 6; a test error only where
    the last evaluation fell on the last iteration (else the closing line gives it)."""
    from tqdm import tqdm

    from conftest import write_cifar_folder
    from resdeg.build import build_parts, build_trainer
    from resdeg.training.recorder import RunRecorder
    from test_train import compose_config

    cfg = compose_config(
        "model.depth=8",
        "protocol=cifar_quick",
        "protocol.iterations=8",
        "protocol.batch_size=20",
        "protocol.log_every=3",
        f"protocol.eval_every={eval_every}",
        "protocol.schedule.warmup_iterations=2",
        "data.eval_batch_size=50",
        "data.num_workers=0",
        "gradient_signals=false",
        f"data.root={write_cifar_folder(tmp_path / 'data')}",
    )
    parts = build_parts(cfg)
    bar = IterationProgressBar("resnet-8-A", every=3, eval_every=eval_every)
    recorder = RunRecorder(tmp_path / "record", {"run_id": "bar"}, "")
    recorder.start()
    trainer = build_trainer(
        cfg, logger=[recorder], callbacks=[bar], enable_checkpointing=False, default_root_dir=str(tmp_path)
    )
    with contextlib.redirect_stderr(io.StringIO()):
        trainer.fit(parts.module, datamodule=parts.datamodule)
    last = recorder.last_metrics
    postfix = bar.train_progress_bar.postfix
    assert f"train_err={tqdm.format_num(last['train/error'])}" in postfix, (postfix, last)
    assert f"loss={tqdm.format_num(last['train/loss'])}" in postfix, (postfix, last)
    assert ("test_err" in postfix) == (eval_every == 8), postfix
