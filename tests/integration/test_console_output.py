"""What a run prints (resdeg.console, resdeg.training.progress): one line when it starts, one
when it ends, compact progress lines off a terminal, no line twice, no library noise."""

import os
import re

import pandas as pd

from conftest import run_cli


def test_a_short_run_prints_each_line_once_and_no_library_noise(small_cifar, tmp_path):
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
        f"data.root={small_cifar}",
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
