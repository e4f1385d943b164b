"""ImageNet runs through the CLI on a tiny generated ImageFolder tree (ImageNet itself is not
available here): curves and 10-crop errors, both sweeps shortened, DDP on CPU, a malformed tree."""

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from conftest import IMAGENET_TINY, SMALL_CROPS, paths, run_cli, train_here, write_imagenet_tree
from resdeg import ResdegError


@pytest.mark.parametrize(
    "mutate,message",
    [
        (lambda root: root / "nowhere", "no ImageNet found"),
        (lambda root: [(root / "val").rename(root / "validation"), root][1], "imagenet/val is missing"),
        (lambda root: [(root / "val" / "n00000002").rename(root / "val" / "n00000009"), root][1], "different classes"),
        (lambda root: [[p.unlink() for p in (root / "train" / "n00000001").iterdir()], root][1], "without images"),
        # 3 training images, a batch of 4: refused before any record is written
        (lambda root: root, "holds 3 images, fewer than one batch of 4"),
    ],
)
def test_a_missing_or_malformed_tree_gives_one_clear_message(tmp_path, mutate, message):
    """Refused in this process, before any record is written, with one line (which the CLI prints
    as its error and exits 2: test_cli_refusals.py)."""
    root = mutate(write_imagenet_tree(tmp_path / "imagenet", train_per_class=1, val_per_class=1))
    with pytest.raises(ResdegError, match=re.escape(message)) as refused:
        train_here(*IMAGENET_TINY, f"data.root={root}", "model.depth=18", *paths(tmp_path))
    assert "\n" not in str(refused.value)
    assert not list((tmp_path / "results").rglob("summary.json"))


def test_class_count_must_match_the_model(tmp_path):
    root = write_imagenet_tree(tmp_path / "imagenet", train_per_class=1, val_per_class=1)
    with pytest.raises(ResdegError, match="set data.num_classes=3") as refused:
        train_here(*IMAGENET_TINY, "data.num_classes=1000", f"data.root={root}", *paths(tmp_path))
    assert "\n" not in str(refused.value)


# -- training, the 10-crop evaluation, sweeps, DDP --------------------------------------------
def records(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(results.glob("runs/*/*/summary.json"))]


def test_short_run_writes_curves_and_ten_crop_errors(imagenet_tree, tmp_path):
    result = run_cli(
        *IMAGENET_TINY,
        f"data.root={imagenet_tree}",
        "model.depth=18",
        f"paths.results={tmp_path / 'results'}",
        f"paths.experiments={tmp_path / 'exp'}",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (record,) = records(tmp_path / "results")
    assert record["status"] == "complete" and record["group"] == "imagenet-paper" and record["name"] == "resnet-18-A"
    assert set(record["final"]) == {
        "train_error",
        "val_error",
        "val_top5_error",
        "val_10crop_error",
        "val_10crop_top5_error",
    }
    assert record["multiply_adds"] == pytest.approx(1.8e9, rel=0.05)
    history = pd.read_csv(next((tmp_path / "results").rglob("history.csv")))
    assert history.query("split == 'train' and metric == 'error'").iteration.tolist() == [1, 2, 3]
    assert history.query("split == 'val' and metric == 'error'").iteration.tolist() == [3]
    ten_crop = history.query("split == 'val_10crop'")
    assert set(ten_crop.metric) == {"error", "top5_error", "loss"}
    # 3 classes: top-5 contains every class, and 6 validation images give errors in steps of 1/6
    assert record["final"]["val_10crop_top5_error"] == 0.0
    assert round(record["final"]["val_10crop_error"] * 6 / 100, 6) == round(
        record["final"]["val_10crop_error"] * 6 / 100
    )
    # Section 4.1's signals, by the same code as CIFAR-10's: ResNet-18 has 16 block 3x3 layers (the stem is 7x7)
    signals = pd.read_csv(next((tmp_path / "results").rglob("signals.csv")))
    assert sorted(signals.iteration.unique()) == [0, 3] and signals.groupby("iteration").layer.count().tolist() == [
        16,
        16,
    ]
    assert (signals[["forward_std", "output_grad_norm", "weight_grad_norm"]] > 0).all().all()


def test_both_imagenet_sweeps_complete_when_shortened(imagenet_tree, tmp_path):
    common = [
        *IMAGENET_TINY[1:],
        *SMALL_CROPS,
        "protocol.iterations=2",
        "protocol.eval_every=2",
        "protocol.checkpoint_every=2",
        # the six runs' records, not their analyses: Fig. 7's pass (a CIFAR-10 figure) and Section
        # 4.1's probe (on ImageNet: test_short_run_writes_curves_and_ten_crop_errors) cost passes of ResNet-34
        "layer_responses=false",
        "gradient_signals=false",
        f"data.root={imagenet_tree}",
        f"paths.results={tmp_path / 'results'}",
        f"paths.experiments={tmp_path / 'exp'}",
    ]
    degradation = run_cli("--multirun", "experiment=degradation_imagenet", *common)
    assert degradation.returncode == 0, degradation.stdout[-3000:] + degradation.stderr[-3000:]
    shortcuts = run_cli("--multirun", "experiment=shortcuts_imagenet", *common)
    assert shortcuts.returncode == 0, shortcuts.stdout[-3000:] + shortcuts.stderr[-3000:]
    runs = records(tmp_path / "results")
    assert sorted(r["name"] for r in runs) == [
        "plain-18",
        "plain-34",
        "resnet-18-A",
        "resnet-34-A",
        "resnet-34-B",
        "resnet-34-C",
    ]  # resnet-34-A is shared by both sweeps
    assert all(r["status"] == "complete" and "val_10crop_error" in r["final"] for r in runs)
    assert (degradation.stdout + degradation.stderr + shortcuts.stdout + shortcuts.stderr).count(
        "complete record exists"
    ) == 1

    # the report turns these real records into Fig. 4, Table 2 and Table 3
    from resdeg.report.__main__ import main as report_main

    assert report_main(["all", "--results", str(tmp_path / "results")]) == 0
    assert (tmp_path / "results" / "figures" / "fig4_imagenet_paper.png").is_file()
    by_name = {r["name"]: r["final"] for r in runs}
    table2 = pd.read_csv(tmp_path / "results" / "tables" / "table2_imagenet_paper.csv").set_index("method")
    assert float(table2.loc["plain-34", "top-1 err % (ours)"]) == pytest.approx(
        by_name["plain-34"]["val_10crop_error"], abs=0.005
    )
    table3 = pd.read_csv(tmp_path / "results" / "tables" / "table3_imagenet_paper.csv").set_index("model")
    assert list(table3.index) == ["plain-34", "ResNet-34 A", "ResNet-34 B", "ResNet-34 C"]
    assert float(table3.loc["ResNet-34 C", "top-5 err % (ours)"]) == pytest.approx(
        by_name["resnet-34-C"]["val_10crop_top5_error"], abs=0.005
    )


def test_ddp_on_cpu_with_two_processes_keeps_the_global_batch_and_two_jobs_of_a_multirun_complete(
    imagenet_tree, tmp_path
):
    """Lightning's DDP strategy, two processes on the CPU (gloo), as two jobs of one Hydra
    multirun: one record per job, written once, each process reading half of the global batch
    of 4. The second job starts its own processes and group: the first job's group is torn
    down and Lightning's LOCAL_RANK... variables and the rewritten argv are restored (before,
    the second job died with "Connection closed by peer")."""
    result = run_cli(
        "--multirun",
        *IMAGENET_TINY,
        *SMALL_CROPS,
        f"data.root={imagenet_tree}",
        "model.depth=18",
        "model.arch=plain,residual",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        f"paths.results={tmp_path / 'results'}",
        f"paths.experiments={tmp_path / 'exp'}",
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert output.count("GLOBAL_RANK: 1, MEMBER: 2/2") >= 2  # each job started its second process
    runs = records(tmp_path / "results")
    assert sorted(r["name"] for r in runs) == ["plain-18", "resnet-18-A"]
    for record in runs:
        assert record["status"] == "complete" and record["processes"] == 2 and record["batch_per_process"] == 2
        # the validation errors are summed over both processes: 6 images, steps of 1/6
        assert round(record["final"]["val_error"] * 6 / 100, 6) == round(record["final"]["val_error"] * 6 / 100)


def test_ddp_training_steps_make_one_collective_every_ten_iterations_and_none_between(tmp_path):
    """Under DDP (two gloo processes) the processes agree on a signal and on the wall-clock
    checkpoint every 10 iterations, in one all-reduce (resdeg.training.preemption); a plain
    step makes no collective of Python's (DDP's own gradient all-reduce is its C++ reducer's).
    Counted per iteration in both processes by tests/collectives/sitecustomize.py."""
    import json
    import os

    from conftest import REPO

    imagenet_tree = write_imagenet_tree(tmp_path / "imagenet")
    counts = tmp_path / "collectives"
    counts.mkdir()
    result = run_cli(
        *IMAGENET_TINY,
        *SMALL_CROPS,
        f"data.root={imagenet_tree}",
        "model.depth=18",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "protocol.iterations=30",
        "protocol.log_every=15",
        "protocol.eval_every=30",
        "protocol.checkpoint_every=30",
        "checkpoint_minutes=10",
        "gradient_signals=false",
        f"paths.results={tmp_path / 'results'}",
        f"paths.experiments={tmp_path / 'exp'}",
        env={
            "RESDEG_TEST_COLLECTIVES": str(counts),
            "PYTHONPATH": os.pathsep.join([str(REPO / "tests" / "collectives"), os.environ.get("PYTHONPATH", "")]),
        },
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    processes = [json.loads(p.read_text()) for p in counts.glob("*.json")]
    assert len(processes) == 2, processes  # both ranks trained and counted
    for counted in processes:
        per_iteration = {int(k): v for k, v in counted["per_iteration"].items()}
        plain = [k for k in range(1, 30) if k % 10 and k % 15]  # neither an agreement nor a logging step
        assert {k: per_iteration[k] for k in plain if per_iteration.get(k)} == {}, counted["callers"]
        assert [per_iteration.get(k) for k in (10, 20)] == [1, 1]  # the agreement: one all-reduce
