"""`make bench`: training throughput of the harness against a bare loop and a conventional pipeline.

For each model (ResNet-20, ResNet-56, plain-56) it measures training images/s of
  (a) harness:      the LightningModule and data module as a sweep runs them (Lightning
                    Trainer, batch-wise tensor pipeline, run-record logging);
  (b) bare:         a hand-written PyTorch loop, same model, batch and optimizer, on a
                    pre-made batch already on the device (an upper bound: no data work);
  (c) conventional: torchvision transforms on PIL images through a DataLoader with worker
                    processes, as most public CIFAR ResNet repositories do;
and prints one table with a/b, a/c and the projected wall time of the paper protocol
(64k iterations), also written to results/bench/bench_<device>[_<overrides>].csv (one file
per settings). The bare loop honours the precision and compile settings, so a/b compares the
same arithmetic. Warm-up iterations (including torch.compile's, when on) are excluded from
every timing. `make gpu-check` (resdeg.gpu_check) measures the whole GPU picture.

    python -m resdeg.bench [--iterations N] [--warmup W] [overrides ...]

With ``--imagenet-root PATH`` it measures instead the ImageNet training input pipeline
(JPEG decoding, scale augmentation, crop, flip, colour augmentation, mean subtraction in
DataLoader workers, as a run reads it) in images/s for 1, 2, ... ``--workers`` workers:
the number of workers a GPU node needs so that data loading is not the bottleneck.
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir

from resdeg.conf import CONFIG_DIR
from resdeg.devices import device_name, device_slug, sync  # noqa: F401 - gpu_check's names too

REPO = Path(__file__).resolve().parents[2]
MODELS = (("residual", 20), ("residual", 56), ("plain", 56))


def compose_cfg(arch: str, depth: int, overrides: list[str]):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("config", [f"model.arch={arch}", f"model.depth={depth}", *overrides])


def build(cfg):
    """Model, optimizer factory and schedule of the bare loop, from the config a run composes."""
    from resdeg.build import instantiate

    model = instantiate(cfg.model)
    return model, instantiate(cfg.protocol.optimizer), instantiate(cfg.protocol.schedule)


@dataclass
class Timing:
    images_per_s: float
    # wall time of the untimed first iterations: cuDNN autotuning, and torch.compile's
    # compilation (and CUDA-graph capture) when compile is on
    warmup_s: float
    # the most GPU memory allocated while training (None on a CPU)
    peak_memory_mib: float | None
    # wall-clock time (time.time()) of the timed part: runs in several processes are compared by it
    timed_from: float = 0.0
    timed_until: float = 0.0


def _reset_peak_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()


def _peak_memory_mib() -> float | None:
    return round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None


def time_harness(cfg, warmup: int, iterations: int, callbacks: tuple = ()) -> Timing:
    """The harness as a sweep runs it (build_parts, the run's Lightning Trainer, the record
    as logger), evaluation off; ``callbacks`` are added (e.g. a profiler window)."""
    import lightning.pytorch as pl

    from resdeg.build import build_parts, build_trainer
    from resdeg.training.recorder import RunRecorder

    class Stopwatch(pl.Callback):
        def on_train_start(self, trainer, *_):
            self.began = time.perf_counter()

        def on_train_batch_start(self, trainer, *_):
            if trainer.global_step == warmup:
                sync()
                self.start, self.wall_start = time.perf_counter(), time.time()

        def on_train_end(self, trainer, *_):
            sync()
            self.seconds, self.wall_end = time.perf_counter() - self.start, time.time()

    parts = build_parts(cfg)  # exactly as resdeg.train builds a run
    stopwatch = Stopwatch()
    _reset_peak_memory()
    with tempfile.TemporaryDirectory() as tmp:
        recorder = RunRecorder(Path(tmp) / "record", {"run_id": "bench"}, "")
        recorder.start()
        trainer = build_trainer(
            cfg, max_steps=warmup + iterations, limit_val_batches=0,
            logger=[recorder], callbacks=[*callbacks, stopwatch], enable_checkpointing=False,
            enable_progress_bar=False, default_root_dir=tmp,
        )
        trainer.fit(parts.module, datamodule=parts.datamodule)
    return Timing(iterations * cfg.protocol.batch_size / stopwatch.seconds, stopwatch.start - stopwatch.began,
                  _peak_memory_mib(), stopwatch.wall_start, stopwatch.wall_end)


# the bare loop's arithmetic for each Lightning precision it knows: autocast dtype (None: none)
BARE_PRECISIONS = {"32-true": None, "32": None, "bf16-mixed": torch.bfloat16, "bf16": torch.bfloat16,
                   "16-mixed": torch.float16, "16": torch.float16}


def time_bare(cfg, warmup: int, iterations: int) -> Timing:
    """A hand-written loop on one pre-made batch already on the device (no data work): the
    same net, optimizer, memory format, precision (autocast as Lightning's mixed precision
    does it, a gradient scaler for fp16) and compile setting as the harness."""
    from resdeg import ResdegError
    from resdeg.build import compile_network

    precision = str(cfg.trainer.precision)
    if precision not in BARE_PRECISIONS:
        raise ResdegError(f"the bare loop knows trainer.precision {', '.join(BARE_PRECISIONS)}, not {precision!r}")
    dtype = BARE_PRECISIONS[precision]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, optimizer_factory, schedule = build(cfg)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = model.to(device, memory_format=memory_format)
    compile_network(model, cfg.get("compile"))
    optimizer = optimizer_factory(model.parameters(), lr=schedule.lr(0))
    scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)
    batch = cfg.protocol.batch_size
    images = torch.randn(batch, 3, 32, 32, device=device).contiguous(memory_format=memory_format)
    labels = torch.randint(0, 10, (batch,), device=device)
    _reset_peak_memory()
    began = time.perf_counter()
    for i in range(warmup + iterations):
        if i == warmup:
            sync()
            start, wall_start = time.perf_counter(), time.time()
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    sync()
    return Timing(iterations * batch / (time.perf_counter() - start), start - began, _peak_memory_mib(), wall_start, time.time())


def time_conventional(cfg, warmup: int, iterations: int, workers: int) -> float:
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from torchvision import transforms

    from resdeg.data.cifar10_files import load_cifar10

    arrays = load_cifar10(cfg.data.root, cfg.data.download)

    class PILCifar(Dataset):
        def __init__(self):
            self.images = arrays.train_images.transpose(0, 2, 3, 1)  # HWC uint8, as PIL wants
            self.labels = arrays.train_labels
            self.transform = transforms.Compose([
                transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(), transforms.ToTensor(),
                transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
            ])

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, i):
            return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, optimizer_factory, schedule = build(cfg)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = model.to(device, memory_format=memory_format)
    optimizer = optimizer_factory(model.parameters(), lr=schedule.lr(0))
    loader = DataLoader(PILCifar(), batch_size=cfg.protocol.batch_size, shuffle=True, drop_last=True,
                        num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=workers > 0)
    batches = iter(loader)
    for i in range(warmup + iterations):
        if i == warmup:
            sync()
            start = time.perf_counter()
        images, labels = next(batches)
        images = images.to(device, non_blocking=True).contiguous(memory_format=memory_format)
        loss = F.cross_entropy(model(images), labels.to(device, non_blocking=True))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    sync()
    return iterations * cfg.protocol.batch_size / (time.perf_counter() - start)


def imagenet_loader_bench(root: str, max_workers: int, batches: int, out: Path) -> pd.DataFrame:
    """Images/s of the ImageNet training pipeline (ImageNetDataModule.train_dataloader) per worker count."""
    from resdeg.data import ImageNetDataModule
    from resdeg.data.imagenet import list_tree

    classes = len([p for p in (Path(root) / "train").iterdir() if p.is_dir()])
    list_tree(Path(root), classes)
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for workers in sorted({1, *range(2, max_workers + 1, 2), max_workers}):
            dm = ImageNetDataModule(root, num_classes=classes, batch_size=64, mean_images=64, num_workers=workers,
                                    cache_dir=cache)
            dm.prepare_data()
            dm.setup()
            train_loader = dm.train_dataloader()
            loader = (batch for _ in iter(int, 1) for batch in train_loader)  # epoch after epoch
            next(loader)  # workers started, first batch decoded
            start = time.perf_counter()
            for _ in range(batches):
                next(loader)
            rate = batches * 64 / (time.perf_counter() - start)
            rows.append({"workers": workers, "images_per_s": round(rate, 1), "per_worker": round(rate / workers, 1)})
            print(rows[-1], flush=True)
            del loader, train_loader
    table = pd.DataFrame(rows)
    print(f"\nImageNet training pipeline, batch 64, {batches} batches; device: {device_name()}")
    print(table.to_string(index=False))
    out.mkdir(parents=True, exist_ok=True)
    table.assign(device=device_name()).to_csv(out / "imagenet_loader_cpu.csv", index=False)
    print(f"written: {out / 'imagenet_loader_cpu.csv'}")
    return table


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    gpu = torch.cuda.is_available()
    parser.add_argument("--iterations", type=int, default=300 if gpu else 15, help="timed iterations per measurement")
    parser.add_argument("--warmup", type=int, default=30 if gpu else 3, help="untimed iterations first")
    parser.add_argument("--workers", type=int, default=8 if gpu else 2, help="DataLoader workers of the conventional pipeline")
    parser.add_argument("--out", default=str(REPO / "results" / "bench"))
    parser.add_argument("--imagenet-root", help="measure the ImageNet input pipeline on this ImageFolder tree instead")
    parser.add_argument("--batches", type=int, default=10, help="timed batches of 64 images (--imagenet-root)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. trainer.precision=bf16-mixed")
    args = parser.parse_args(argv)
    if args.imagenet_root:
        return imagenet_loader_bench(args.imagenet_root, args.workers, args.batches, Path(args.out))

    rows = []
    for arch, depth in MODELS:
        cfg = compose_cfg(arch, depth, ["protocol=cifar_paper", *args.overrides])
        name = f"plain-{depth}" if arch == "plain" else f"resnet-{depth}"
        torch.manual_seed(0)
        a = time_harness(cfg, args.warmup, args.iterations).images_per_s
        b = time_bare(cfg, args.warmup, args.iterations).images_per_s
        c = time_conventional(cfg, args.warmup, args.iterations, args.workers)
        paper_images = cfg.protocol.iterations * cfg.protocol.batch_size
        rows.append({
            "model": name, "harness_img_s": round(a, 1), "bare_img_s": round(b, 1), "conventional_img_s": round(c, 1),
            "a_over_b": round(a / b, 3), "a_over_c": round(a / c, 3),
            "paper_protocol_hours": round(paper_images / a / 3600, 2),
        })
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    device = device_name()
    print(f"\ntraining throughput, batch 128, {args.iterations} timed iterations after {args.warmup} warm-up; device: {device}")
    print(f"overrides: {' '.join(args.overrides) or '(none)'}")
    print(table.to_string(index=False))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # one file per device and settings: `make bench ARGS="trainer.precision=bf16-mixed"` does not
    # overwrite the default settings' file
    settings = re.sub(r"[^a-z0-9.]+", "-", " ".join(args.overrides).lower()).strip("-")
    path = out / f"bench_{device_slug()}{'_' + settings if settings else ''}.csv"
    table.assign(device=device, iterations=args.iterations, overrides=" ".join(args.overrides)).to_csv(path, index=False)
    print(f"written: {path}")
    return table


if __name__ == "__main__":
    main()
