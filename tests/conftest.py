"""Shared fixtures. The real CIFAR-10 archive is found the way users point at it: the
RESDEG_CIFAR_ROOT environment variable (.ci/run sets it to this project's copy in
../shared/data). Without it, tests that need it skip with the reason; under CI (CI=true) a
missing archive is a failure, not a skip."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from resdeg.resolvers import register_resolvers

# the tests compose configs as the entry points do (resdeg.train registers the resolvers on import)
register_resolvers()

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "resdeg"

# the report's tests share their record writers and fixtures (tests/fake_records.py)
pytest_plugins = ["fake_records"]

# The two tiers mirror the folders: tests/unit/<package folder>/ tests one part of the package
# in-process, in seconds; tests/integration/ runs it as users do (the CLI, make, real CIFAR-10,
# SLURM, LaTeX, a built wheel; whole runs whose command line is not the point train in the test's
# process, train_here) and is marked `slow` (pyproject.toml). `make test-fast` runs the unit tier,
# `make test` both. A unit test that asks for the real data or a cluster belongs in
# integration/: collection says so.
SLOW_FIXTURES = ("cifar_root", "slurm")
INTEGRATION = Path(__file__).resolve().parent / "integration"
UNIT = Path(__file__).resolve().parent / "unit"


# `make test` runs the suite on pytest-xdist workers (Makefile TEST_WORKERS), one thread each:
# the tests' nets are small, so two one-thread runs side by side beat one two-thread run.
# A session or module fixture is built once per worker: the tests of one that stands for a
# cluster or a whole training run share a worker (--dist loadgroup), so it is built once.
SHARED_ON_ONE_WORKER = {
    "slurm": "slurm",
    "resnet8_on_real_cifar": "ResNet-8 on real CIFAR-10",
}
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"  # the runs the tests start
    import torch

    torch.set_num_threads(1)  # the runs in this process


@pytest.hookimpl(tryfirst=True)  # before xdist's loadgroup reads the groups
def pytest_collection_modifyitems(config, items):
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if INTEGRATION in Path(item.path).parents:
            item.add_marker(pytest.mark.slow)
        elif UNIT in Path(item.path).parents and (slow := [name for name in SLOW_FIXTURES if name in fixtures]):
            raise pytest.UsageError(f"{item.nodeid} uses {', '.join(slow)}: it belongs in tests/integration/")
        for fixture, group in SHARED_ON_ONE_WORKER.items():
            if fixture in fixtures:
                item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture(scope="session", autouse=True)
def decoded_cifar_cache(tmp_path_factory):
    """The runs a test session starts (its subprocesses too) keep CIFAR-10's decoded arrays in a
    cache of the session's (resdeg.data.cifar10_files), never in the user's own; one for all the
    session's xdist workers (the cache is written whole or not at all)."""
    session = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        session = session.parent  # the workers' folders lie in the session's
    os.environ["RESDEG_CACHE"] = str(session / "decoded-cifar")


def _find_cifar_root() -> Path | None:
    root = os.environ.get("RESDEG_CIFAR_ROOT")
    if not root:
        return None
    root = Path(root)
    if (root / "cifar-10-python.tar.gz").is_file() or (root / "cifar-10-batches-py").is_dir():
        return root
    return None


@pytest.fixture(scope="session")
def cifar_root() -> Path:
    root = _find_cifar_root()
    if root is None:
        reason = (
            "real CIFAR-10 not found: set RESDEG_CIFAR_ROOT to a folder holding cifar-10-python.tar.gz "
            f"(currently {os.environ.get('RESDEG_CIFAR_ROOT')!r})"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + " -- under CI the real archive is required")
        pytest.skip(reason)
    return root


def write_cifar_folder(folder: Path, per_class_train: int = 20, per_class_test: int = 5, seed: int = 0) -> Path:
    """A small CIFAR-10 in the real "python version" layout (balanced classes, uint8 images).

    For the loader's validation paths; training on real data uses the real archive.
    """
    rng = np.random.default_rng(seed)
    batches = folder / "cifar-10-batches-py"
    batches.mkdir(parents=True, exist_ok=True)
    train_labels = np.repeat(np.arange(10), per_class_train)
    rng.shuffle(train_labels)
    for i, part in enumerate(np.array_split(train_labels, 5), start=1):
        data = rng.integers(0, 256, (len(part), 3072), dtype=np.uint8)
        with open(batches / f"data_batch_{i}", "wb") as f:
            pickle.dump({"data": data, "labels": part.tolist(), "batch_label": f"batch {i}"}, f)
    test_labels = np.repeat(np.arange(10), per_class_test)
    with open(batches / "test_batch", "wb") as f:
        pickle.dump(
            {"data": rng.integers(0, 256, (len(test_labels), 3072), dtype=np.uint8), "labels": test_labels.tolist()}, f
        )
    return folder


@pytest.fixture(scope="session")
def small_cifar(tmp_path_factory) -> Path:
    """A CIFAR-10 of 1000 training and 250 test images in the real "python version" layout, for
    the tests of a run's life (kills, resumes, sweeps, records), where what is tested is the run,
    not the data: its evaluations (one batch of 250) cost a fortieth of the real 10,000 images'."""
    return write_cifar_folder(tmp_path_factory.mktemp("cifar-small"), per_class_train=100, per_class_test=25)


def paths(tmp: Path) -> list[str]:
    """The overrides that keep a test's records and experiments in its own folder."""
    return [f"paths.results={tmp / 'results'}", f"paths.experiments={tmp / 'experiments'}"]


def compose_config(*overrides: str):
    """The config a run of these overrides trains with, composed as the CLI composes it."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def train_here(*overrides: str, env: dict | None = None) -> str:
    """The run ``run_cli(*overrides, env=env)`` starts, trained in this process instead
    (resdeg.train.train, what the CLI calls, after the CLI's console.quiet_libraries): for the
    runs whose command line is not what a test is about (twins, resumes, refusals), as a new
    process spends seconds importing torch and Lightning first. Returns what the run logged; a
    refusal raises its ResdegError."""
    import logging
    import warnings
    from unittest import mock

    import torch

    from resdeg.console import quiet_libraries
    from resdeg.train import train

    logged: list[str] = []
    catch = logging.Handler(logging.INFO)
    catch.emit = lambda record: logged.append(record.getMessage())
    logger = logging.getLogger("resdeg")
    level = logger.level
    deterministic = torch.are_deterministic_algorithms_enabled()  # trainer.deterministic sets it process-wide
    logger.addHandler(catch)
    logger.setLevel(logging.INFO)
    try:
        with warnings.catch_warnings(), mock.patch.dict(os.environ, env or {}):
            quiet_libraries()  # Lightning's resume warnings, false here, filtered as the CLI filters them
            train(compose_config(*overrides))
    finally:
        logger.removeHandler(catch)
        logger.setLevel(level)
        torch.use_deterministic_algorithms(deterministic)
    return "\n".join(logged)


# config values the checks refuse, each with the start of its one-line message (resdeg.config_checks)
BAD = [
    ("protocol.iterations=0", "protocol.iterations=0 is too small: it must be at least 1"),
    ("protocol.iterations=-5", "protocol.iterations=-5 is too small"),
    ("protocol.batch_size=0", "protocol.batch_size=0 is too small"),
    ("protocol.batch_size=100000", "protocol.batch_size=100000 is larger than the 50000 training images"),
    ("protocol.schedule.base_lr=-1", "protocol.schedule.base_lr=-1 must be a finite number above 0"),
    ("protocol.schedule.base_lr=nan", "protocol.schedule.base_lr=nan must be a finite number above 0"),
    ("trainer.precision=fp17", "trainer.precision='fp17' is unknown: choose one of"),
    ("seed=abc", "seed='abc' is not an integer"),
    ("model.depth=abc", "model.depth='abc' is not an integer"),
    ("checkpoint_minutes=-1", "checkpoint_minutes=-1 must be a number of minutes of at least 0"),
    ("seed=-1", "seed=-1 is too small: it must be at least 0"),
    ("seed=4294967296", "seed=4294967296 is too large: it must be at most 4294967295"),
    ("protocol.schedule.warmup_iterations=-1", "protocol.schedule.warmup_iterations=-1 is too small"),
    ("data.eval_batch_size=0", "data.eval_batch_size=0 is too small: it must be at least 1"),
    ("model.num_classes=5", "model.num_classes=5 does not match CIFAR-10's 10 classes"),
    ("protocol.optimizer.momentum=-1", "protocol.optimizer.momentum=-1 must be a finite number of at least 0"),
    ("trainer.devices=0", "trainer.devices=0 trains on no device"),
]


def run_cli(
    *overrides: str, env: dict | None = None, cwd: Path = REPO, timeout: int = 900
) -> subprocess.CompletedProcess:
    """Run ``python -m resdeg.train`` as a user would, capturing its output."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "resdeg.train", *overrides],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write_imagenet_tree(
    folder: Path, classes: int = 3, train_per_class: int = 6, val_per_class: int = 2, seed: int = 0
) -> Path:
    """A tiny ImageNet in the ImageFolder layout: real JPEG files of varied sizes and shapes."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for c in range(classes):
            target = folder / split / f"n{c:08d}"
            target.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                width, height = (int(v) for v in rng.integers(120, 420, size=2))
                # a colour per class plus noise, so the classes are learnable
                base = np.array([(c * 80) % 256, (c * 140 + 60) % 256, (c * 200 + 30) % 256], dtype=np.float32)
                pixels = np.clip(base + rng.normal(0, 40, (height, width, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(pixels).save(target / f"{split}_{c}_{i}.JPEG", quality=90)
    return folder


IMAGENET_TINY = [
    "experiment=degradation_imagenet",
    "data.num_classes=3",
    "data.num_workers=0",
    "data.mean_images=8",
    "data.eval_batch_size=20",
    "protocol.batch_size=4",
    "protocol.iterations=3",
    "protocol.log_every=1",
    "protocol.eval_every=3",
    "protocol.checkpoint_every=3",
]
# The tests of a run's mechanics (sweeps, DDP, resumes) train on 32-pixel crops of the same tiny
# tree: the same code as the paper's 224-pixel crops (ResNet-18/34's stride-32 stem and stages
# end at 1x1), about fifty times fewer multiply-adds per image
SMALL_CROPS = ["data.scale=[40,56]", "data.crop=32", "data.eval_resize=36"]


@pytest.fixture(scope="session")
def imagenet_tree(tmp_path_factory) -> Path:
    return write_imagenet_tree(tmp_path_factory.mktemp("imagenet"))


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """A real one-node SLURM cluster for the session (tests/slurm_cluster.py), installed from
    Debian's packages where missing; the tests that use it skip, with the reason, where it cannot
    be installed (not root, no apt)."""
    from slurm_cluster import SlurmCluster, install

    reason = install()
    if reason:
        pytest.skip(f"no SLURM: {reason}")
    with SlurmCluster.start(tmp_path_factory.mktemp("slurm")) as cluster:
        yield cluster


@pytest.fixture
def small_disk(tmp_path):
    """``small_disk(size)``: a folder on a tmpfs of ``size`` (e.g. "256k"), as a full or small
    disk is: a node-local /tmp, a quota. Mounted as root, unmounted after the test; the test
    skips with the reason where it cannot be mounted (not root, no mount permission)."""
    mounted = []

    def mount(size: str, name: str = "disk") -> Path:
        folder = tmp_path / name
        folder.mkdir()
        if os.geteuid() != 0:
            pytest.skip("a small disk needs a tmpfs mounted as root")
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True, text=True
        )
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def remount(folder: Path, options: str) -> None:
    """Change a ``small_disk``'s mount options: ``size=64m`` frees space, ``ro``/``rw``."""
    subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True)


@pytest.fixture(scope="session")
def pdflatex() -> str:
    """A real pdflatex with booktabs and tabularx, installed from Debian where missing (as CI
    does: root, apt); the tests that compile tables skip, with the reason, where it cannot be."""
    import shutil

    from debian import install_packages

    if (
        shutil.which("pdflatex") is None
        or subprocess.run(["kpsewhich", "booktabs.sty"], capture_output=True).returncode
    ):
        reason = install_packages("LaTeX", ["texlive-latex-base", "texlive-latex-recommended"])
        if reason:
            pytest.skip(f"no LaTeX: {reason}")
    return shutil.which("pdflatex")
