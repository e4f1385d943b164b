"""The ImageNet track: Table 1 networks, shortcut options, data module, 10-crop test, sweeps, DDP.

ImageNet itself is not available here: the data paths run on a tiny ImageFolder tree of real
JPEG files that the tests write (conftest.write_imagenet_tree)."""

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import torchvision
from torch import nn

from conftest import IMAGENET_TINY, run_cli, write_imagenet_tree
from resdeg import ResdegError
from resdeg.models import ImageNetNet, count_parameters, multiply_adds
from resdeg.models.imagenet import load_torchvision_state_dict, torchvision_name
from resdeg.models.shortcuts import ProjectionShortcut, ZeroPadShortcut

# Table 1, "FLOPs" row (multiply-adds per 224x224 image)
TABLE1_MULTIPLY_ADDS = {18: 1.8e9, 34: 3.6e9, 50: 3.8e9, 101: 7.6e9, 152: 11.3e9}


# -- networks -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "depth,torchvision_net", [(18, torchvision.models.resnet18), (34, torchvision.models.resnet34)]
)
def test_option_b_resnet_is_torchvisions_architecture(depth, torchvision_net):
    """Same parameter count, and torchvision's (freshly initialised) weights loaded through the
    name mapping give the same outputs: the two networks compute the same function."""
    theirs = torchvision_net().eval()  # random initialisation, nothing downloaded
    ours = ImageNetNet("residual", depth, "B").eval()
    assert count_parameters(ours) == count_parameters(theirs)
    load_torchvision_state_dict(ours, theirs.state_dict())
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(ours(x), theirs(x))


def test_name_mapping_is_documented_by_example():
    assert torchvision_name("stem.0.weight") == "conv1.weight"
    assert torchvision_name("stem.1.running_mean") == "bn1.running_mean"
    assert torchvision_name("stages.1.0.shortcut.0.weight") == "layer2.0.downsample.0.weight"
    assert torchvision_name("stages.3.2.conv2.weight") == "layer4.2.conv2.weight"


@pytest.mark.parametrize("depth,expected", TABLE1_MULTIPLY_ADDS.items())
def test_multiply_adds_match_table1_within_5_percent(depth, expected):
    measured = multiply_adds(ImageNetNet("residual", depth, "B"), (3, 224, 224))
    assert abs(measured - expected) / expected < 0.05, f"{depth}: {measured:.3g} vs {expected:.3g}"


@pytest.mark.parametrize("depth", [18, 34, 50])
def test_plain_nets_have_no_shortcut_and_option_a_adds_no_parameter(depth):
    plain = ImageNetNet("plain", depth)
    assert all(block.shortcut is None for stage in plain.stages for block in stage)
    assert not [name for name, _ in plain.named_parameters() if "shortcut" in name]
    if depth < 50:  # basic blocks: option A is parameter-free, so plain and residual-A are equal
        assert count_parameters(plain) == count_parameters(ImageNetNet("residual", depth, "A"))


@pytest.mark.parametrize("depth", [18, 34, 50])
def test_option_c_projects_every_shortcut_and_b_only_where_dimensions_increase(depth):
    blocks_c = [b for stage in ImageNetNet("residual", depth, "C").stages for b in stage]
    assert all(isinstance(b.shortcut, ProjectionShortcut) for b in blocks_c)
    blocks_b = [b for stage in ImageNetNet("residual", depth, "B").stages for b in stage]
    projected = [i for i, b in enumerate(blocks_b) if isinstance(b.shortcut, ProjectionShortcut)]
    starts = [sum(len(s) for s in ImageNetNet("residual", depth, "B").stages[:k]) for k in range(4)]
    # 18/34: the first block of conv3_x..conv5_x; 50: also conv2_1 (64 -> 256 channels)
    assert projected == (starts[1:] if depth < 50 else starts)
    blocks_a = [b for stage in ImageNetNet("residual", depth, "A").stages for b in stage]
    assert all(isinstance(b.shortcut, (ZeroPadShortcut, nn.Identity)) for b in blocks_a)
    c, b = count_parameters(ImageNetNet("residual", depth, "C")), count_parameters(ImageNetNet("residual", depth, "B"))
    assert c > b > count_parameters(ImageNetNet("residual", depth, "A"))


def test_unknown_imagenet_depth_names_the_choices():
    with pytest.raises(ResdegError, match="choose one of 18, 34, 50, 101, 152"):
        ImageNetNet("residual", 20)


# -- data ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return write_imagenet_tree(tmp_path_factory.mktemp("imagenet"))


def datamodule(tree: Path, tmp: Path, **kwargs):
    from resdeg.data import ImageNetDataModule

    options = dict(
        root=str(tree),
        num_classes=3,
        batch_size=4,
        eval_batch_size=20,
        mean_images=8,
        num_workers=0,
        cache_dir=str(tmp / "cache"),
    )
    dm = ImageNetDataModule(**{**options, **kwargs})
    dm.prepare_data()
    dm.setup()
    return dm


def test_training_views_are_224_crops_with_the_mean_image_subtracted(tree, tmp_path):
    from torchvision.datasets import ImageFolder

    dm = datamodule(tree, tmp_path, colour_augment=False, mean_images=1000)  # the mean of all 18 training images
    assert dm.mean_image.shape == (3, 224, 224)
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (4, 3, 224, 224) and labels.shape == (4,)
    # per-pixel mean subtraction: the centre crops of the training images, minus the mean image, average to 0
    centred = ImageFolder(tree / "train", transform=dm._centre_transform())
    average = torch.stack([centred[i][0] for i in range(len(centred))]).mean(dim=0)
    assert average.abs().max() < 1e-5
    assert len(list((tmp_path / "cache").glob("imagenet_mean_*.pt"))) == 1  # computed once, cached


def test_ten_crop_view_is_corners_centre_and_flips(tree, tmp_path):
    dm = datamodule(tree, tmp_path)
    crops, label = dm.val_10crop_set[0]
    assert crops.shape == (10, 3, 224, 224)
    # torchvision's ten_crop takes the five crops of the flipped image: its top-left crop is
    # the flip of the top-right one, and so on (order: tl, tr, bl, br, centre)
    views = crops + dm.mean_image
    assert torch.allclose(views[5:9], views[[1, 0, 3, 2]].flip(-1), atol=1e-5)
    # the flipped centre crop: the same region up to one pixel when the width's margin is odd
    flipped_centre = views[4].flip(-1)
    assert any(torch.allclose(views[9][..., 1:-1], flipped_centre[..., k : k + 222], atol=1e-5) for k in range(3))


def test_ten_crop_test_averages_softmax_over_crops():
    from resdeg.training.module import ClassifierModule
    from resdeg.training.schedule import PlateauSchedule

    class Fixed(nn.Module):  # logits that depend on the crop: crop 0 votes class 0, others class 1
        def forward(self, x):
            n = x.shape[0]
            logits = torch.zeros(n, 3)
            logits[torch.arange(n) % 10 == 0, 0] = 10.0
            logits[torch.arange(n) % 10 != 0, 1] = 1.0
            return logits

    module = ClassifierModule(Fixed(), PlateauSchedule(0.1), None, top5=True)
    module.on_test_epoch_start()
    module.test_step((torch.zeros(2, 10, 3, 4, 4), torch.tensor([0, 1])), 0)
    metrics = module.test_metrics()
    # averaged probabilities favour class 1 (9 crops) over class 0 (1 confident crop): one of two images wrong
    assert metrics["val_10crop/error"] == 50.0 and metrics["val_10crop/top5_error"] == 0.0


def test_each_process_reads_its_own_slice_of_the_global_batch():
    from resdeg.data.imagenet import TrainBatchSampler

    samplers = [TrainBatchSampler(40, 8, seed=0, rank=r, world_size=2, start_iteration=lambda: 0) for r in range(2)]
    batches = [list(s) for s in samplers]
    assert len(batches[0]) == len(batches[1]) == 5
    for a, b in zip(*batches):
        assert len(a) == len(b) == 4 and not set(a) & set(b)  # 4 + 4 = the global batch of 8
    assert sorted(i for batch in batches[0] + batches[1] for i in batch) == list(range(40))  # one epoch


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
@pytest.mark.slow
def test_a_missing_or_malformed_tree_gives_one_clear_message(tmp_path, mutate, message):
    root = mutate(write_imagenet_tree(tmp_path / "imagenet", train_per_class=1, val_per_class=1))
    result = run_cli(
        *IMAGENET_TINY,
        f"data.root={root}",
        "model.depth=18",
        f"paths.results={tmp_path / 'results'}",
        f"paths.experiments={tmp_path / 'exp'}",
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2 and message in output and "Traceback" not in output
    assert not list((tmp_path / "results").rglob("summary.json"))


@pytest.mark.slow
def test_class_count_must_match_the_model(tmp_path):
    root = write_imagenet_tree(tmp_path / "imagenet", train_per_class=1, val_per_class=1)
    result = run_cli(
        *IMAGENET_TINY,
        "data.num_classes=1000",
        f"data.root={root}",
        f"paths.results={tmp_path / 'r'}",
        f"paths.experiments={tmp_path / 'e'}",
    )
    assert result.returncode == 2 and "set data.num_classes=3" in result.stdout + result.stderr


# -- training, the 10-crop evaluation, sweeps, DDP --------------------------------------------
def records(results: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(results.glob("runs/*/*/summary.json"))]


@pytest.mark.slow
def test_short_run_writes_curves_and_ten_crop_errors(tree, tmp_path):
    result = run_cli(
        *IMAGENET_TINY,
        f"data.root={tree}",
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


@pytest.mark.slow
def test_both_imagenet_sweeps_complete_when_shortened(tree, tmp_path):
    common = [
        *IMAGENET_TINY[1:],
        "protocol.iterations=2",
        "protocol.eval_every=2",
        "protocol.checkpoint_every=2",
        f"data.root={tree}",
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


@pytest.mark.slow
def test_ddp_on_cpu_with_two_processes_keeps_the_global_batch_and_two_jobs_of_a_multirun_complete(tree, tmp_path):
    """Lightning's DDP strategy, two processes on the CPU (gloo), as two jobs of one Hydra
    multirun: one record per job, written once, each process reading half of the global batch
    of 4. The second job starts its own processes and group: the first job's group is torn
    down and Lightning's LOCAL_RANK... variables and the rewritten argv are restored (before,
    the second job died with "Connection closed by peer")."""
    result = run_cli(
        "--multirun",
        *IMAGENET_TINY,
        f"data.root={tree}",
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


@pytest.mark.slow
def test_ddp_training_steps_make_one_collective_every_ten_iterations_and_none_between(tmp_path):
    """Under DDP (two gloo processes) the processes agree on a signal and on the wall-clock
    checkpoint every 10 iterations, in one all-reduce (resdeg.training.preemption); a plain
    step makes no collective of Python's (DDP's own gradient all-reduce is its C++ reducer's).
    Counted per iteration in both processes by tests/collectives/sitecustomize.py."""
    import json
    import os

    from conftest import REPO

    tree = write_imagenet_tree(tmp_path / "imagenet")
    counts = tmp_path / "collectives"
    counts.mkdir()
    result = run_cli(
        *IMAGENET_TINY,
        f"data.root={tree}",
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


def test_decoding_workers_come_from_the_cores_each_process_may_use():
    from resdeg.data.imagenet import decoding_workers

    # Lightning's launcher: 8 GPU processes share a 64-core node, all seeing its 64 cores
    assert decoding_workers(64, 8, None)[0] == 7
    # srun with task binding: each task's affinity is already its own 8 cores (was 8 // 8 - 1 -> 1 worker)
    assert decoding_workers(8, 8, "8")[0] == 7
    # srun without binding: the task sees the node but SLURM gave it 8 cores
    assert decoding_workers(64, 8, "8")[0] == 7
    assert decoding_workers(2, 4, None)[0] == 1  # never fewer than one
    # the parallel launcher's jobs side by side share the node too: 8 one-GPU jobs on 64 cores
    assert decoding_workers(64, 1, None, jobs=8)[0] == 7
    assert decoding_workers(64, 1, None)[0] == 63  # a job alone


def test_plateau_schedule_divides_by_ten_when_the_error_stops_improving():
    from resdeg.training.schedule import PlateauSchedule

    schedule = PlateauSchedule(base_lr=0.1, patience=2, threshold=0.5, max_drops=2)
    for error in (60.0, 50.0, 49.8, 49.9):  # two evaluations without a 0.5-point gain
        schedule.observe(error)
    assert schedule.lr(12345) == pytest.approx(0.01)
    restored = PlateauSchedule(base_lr=0.1, patience=2, threshold=0.5, max_drops=2)
    restored.load_state_dict(schedule.state_dict())  # what a resumed run gets from its checkpoint
    assert restored.lr(0) == pytest.approx(0.01)
    for error in (49.9, 49.9, 49.9, 49.9, 49.9, 49.9):
        schedule.observe(error)
    assert schedule.lr(0) == pytest.approx(0.001)  # at most max_drops
