"""What a run prints (resdeg.console, resdeg.training.progress): a bar on a terminal, lines elsewhere,
the bar ending on the closing line's values, no evaluation bar."""

import contextlib
import io

import pytest

from resdeg.training.progress import IterationProgressBar, IterationProgressLines, progress_callback


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

    from conftest import compose_config, write_cifar_folder
    from resdeg.build import build_parts, build_trainer
    from resdeg.training.recorder import RunRecorder

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
