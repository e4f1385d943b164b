"""End-to-end: training runs and sweeps through the user's entry point, on conftest.small_cifar (learning
on the real CIFAR-10 is tested in test_cifar10_real.py)."""

import json
from pathlib import Path

import pandas as pd

from conftest import compose_config, run_cli
from resdeg.train import train


def records(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(results.glob("runs/*/*/summary.json"))]


def test_sweep_over_two_configs_writes_two_complete_records(small_cifar, tmp_path):
    overrides = [
        "--multirun",
        "experiment=degradation_cifar",
        "model.arch=plain,residual",
        "model.depth=20",
        "protocol=cifar_quick",
        "protocol.iterations=6",
        "protocol.log_every=3",
        "protocol.eval_every=6",
        "protocol.schedule.warmup_iterations=3",
        "layer_responses=false",
        f"paths.results={tmp_path / 'results'}",
        f"paths.experiments={tmp_path / 'experiments'}",
    ]
    result = run_cli(*overrides, env={"RESDEG_CIFAR_ROOT": str(small_cifar)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    runs = records(tmp_path / "results")
    assert sorted(r["name"] for r in runs) == ["plain-20", "resnet-20-A"]
    assert all(r["status"] == "complete" and r["iteration"] == 6 for r in runs)
    assert all(r["group"] == "cifar10-quick-6" for r in runs)  # the quick protocol is named by its budget
    assert runs[0]["parameters"] == runs[1]["parameters"] == 269722
    # Hydra's output stays under experiments/
    assert (tmp_path / "experiments" / "hydra" / "sweeps").is_dir()

    # Re-launching the same sweep skips the complete runs and changes nothing.
    before = {p: p.read_text() for p in (tmp_path / "results").rglob("*.json")}
    again = run_cli(*overrides, env={"RESDEG_CIFAR_ROOT": str(small_cifar)})
    assert again.returncode == 0
    assert (again.stdout + again.stderr).count("complete record exists") == 2
    assert {p: p.read_text() for p in (tmp_path / "results").rglob("*.json")} == before


def test_changing_log_every_changes_no_training(small_cifar, tmp_path):
    """The until_error warm-up (ResNet-110's) is checked on its own cadence, not at log_every:
    two runs that differ only in log_every train identically."""
    histories = []
    for log_every in (2, 4):
        cfg = compose_config(
            "model.depth=8",
            "protocol=cifar_paper_warmup",
            "protocol.iterations=12",
            "protocol.batch_size=32",
            "protocol.schedule.warmup_error_below=100",
            "protocol.schedule.warmup_check_every=4",
            f"protocol.log_every={log_every}",
            "protocol.eval_every=12",
            "protocol.checkpoint_every=12",
            "layer_responses=false",
            f"data.root={small_cifar}",
            f"paths.results={tmp_path / str(log_every)}",
            f"paths.experiments={tmp_path / 'e' / str(log_every)}",
        )
        summary = train(cfg)
        assert summary["status"] == "complete"
        history = pd.read_csv(next((tmp_path / str(log_every)).glob("runs/*/*/history.csv")))
        histories.append(history[history.iteration % 4 == 0].reset_index(drop=True))
    lr = histories[0].query("metric == 'lr'").value.tolist()
    assert lr == [0.01, 0.1, 0.1]  # warm-up at 0.01 until the first check (iteration 4), then the paper's 0.1
    pd.testing.assert_frame_equal(histories[0].query("split == 'test'"), histories[1].query("split == 'test'"))
    assert histories[0].query("metric == 'lr'").equals(histories[1].query("metric == 'lr'"))


class _Terminal:
    """A stream that says it is a terminal: the run then draws its progress bar (tqdm)."""

    def isatty(self) -> bool:
        return True


def test_a_training_step_reads_nothing_from_the_device(small_cifar, tmp_path):
    """No host read of a device value (.item(), float(t), .tolist(), a copy to the CPU...) inside
    a training step that neither closes a logging interval nor evaluates nor checkpoints: on a GPU
    each such read makes Python wait for the device. Counted on CPU by HostReadsPerIteration, with
    the run's own callbacks (progress bar included) and record; the interval-closing iterations do
    read (once per interval), which shows the count sees reads."""
    from resdeg.build import build_parts, build_trainer, run_callbacks
    from resdeg.training.host_reads import HostReadsPerIteration
    from resdeg.training.recorder import RunRecorder

    cfg = compose_config(
        "model.depth=8",
        "protocol=cifar_quick",
        "protocol.iterations=24",
        "protocol.batch_size=32",
        "protocol.log_every=8",
        "protocol.eval_every=12",
        "protocol.checkpoint_every=12",
        f"data.root={small_cifar}",
    )
    parts = build_parts(cfg)
    recorder = RunRecorder(tmp_path / "record", {"run_id": "resnet-8-A_seed0_x"}, "")
    recorder.start()
    reads = HostReadsPerIteration()
    trainer = build_trainer(
        cfg,
        logger=[recorder],
        default_root_dir=str(tmp_path),
        callbacks=[
            *run_callbacks(cfg, "resnet-8-A", tmp_path / "ckpt", stream=_Terminal(), recorder=recorder).all,
            reads,
        ],
    )
    trainer.fit(parts.module, datamodule=parts.datamodule)
    assert trainer.global_step == 24
    quiet = reads.quiet_iterations(8, 12)
    assert sorted(quiet) == [2, 3, 4, 5, 6, 7, 10, 11, 14, 15, 18, 19, 20, 21, 22, 23]
    assert {k: dict(v) for k, v in quiet.items() if v} == {}
    assert sum(reads.per_iteration[9].values()) > 0  # iteration 8's interval closed: its sums read once
    # Section 4.1's signals were measured (at 0, 12 and 24), outside the quiet steps
    assert sorted(pd.read_csv(tmp_path / "record" / "signals.csv").iteration.unique()) == [0, 12, 24]


def test_an_evaluation_reads_its_sums_from_the_device_once_not_per_batch(small_cifar, tmp_path):
    """The evaluation's loss and error sums stay on the device: 10 batches of a test set make
    no host read each (on a GPU each .item() makes Python wait), the sums are read once at the end."""
    from resdeg.build import build_parts, build_trainer
    from resdeg.training.host_reads import HostReadCounter

    cfg = compose_config(
        "model.depth=8",
        "protocol=cifar_quick",
        f"data.root={small_cifar}",
        "gradient_signals=false",
        "data.eval_batch_size=25",  # the small CIFAR-10's 250 test images in 10 batches
    )
    parts = build_parts(cfg)
    trainer = build_trainer(cfg, logger=False, default_root_dir=str(tmp_path), enable_progress_bar=False)
    with HostReadCounter() as counter:
        trainer.validate(parts.module, datamodule=parts.datamodule, verbose=False)
    assert parts.module.evaluations == 1
    in_steps = {where: n for where, n in counter.reads.items() if "_add_to_sums" in where or "validation_step" in where}
    assert in_steps == {}, in_steps
    # the one read: the sums of the evaluation, once, where its errors are computed
    assert [n for where, n in counter.reads.items() if "module.py" in where] == [1], dict(counter.reads)
