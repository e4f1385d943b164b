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
every timing (resdeg.perf.timing). `make gpu-check` (resdeg.perf.gpu_check) measures the whole GPU picture.

    python -m resdeg.perf.bench [--iterations N] [--warmup W] [overrides ...]

With ``--imagenet-root PATH`` it measures instead the ImageNet training input pipeline
(JPEG decoding, scale augmentation, crop, flip, colour augmentation, mean subtraction in
DataLoader workers, as a run reads it) in images/s for 1, 2, ... ``--workers`` workers:
the number of workers a GPU node needs so that data loading is not the bottleneck.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from resdeg.devices import device_name, device_slug
from resdeg.paths import results_root
from resdeg.perf.timing import build, compose_cfg, own_sync, time_bare, time_harness

MODELS = (("residual", 20), ("residual", 56), ("plain", 56))


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
            self.transform = transforms.Compose(
                [
                    transforms.RandomCrop(32, padding=4),
                    transforms.RandomHorizontalFlip(),
                    transforms.ToTensor(),
                    transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
                ]
            )

        def __len__(self):
            return len(self.labels)

        def __getitem__(self, i):
            return self.transform(Image.fromarray(self.images[i])), int(self.labels[i])

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model, optimizer_factory, schedule = build(cfg)
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = model.to(device, memory_format=memory_format)
    optimizer = optimizer_factory(model.parameters(), lr=schedule.lr(0))
    loader = DataLoader(
        PILCifar(),
        batch_size=cfg.protocol.batch_size,
        shuffle=True,
        drop_last=True,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
    )
    batches = iter(loader)
    for i in range(warmup + iterations):
        if i == warmup:
            own_sync()
            start = time.perf_counter()
        images, labels = next(batches)
        images = images.to(device, non_blocking=True).contiguous(memory_format=memory_format)
        loss = F.cross_entropy(model(images), labels.to(device, non_blocking=True))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    own_sync()
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
            dm = ImageNetDataModule(
                root, num_classes=classes, batch_size=64, mean_images=64, num_workers=workers, cache_dir=cache
            )
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
    parser.add_argument(
        "--workers", type=int, default=8 if gpu else 2, help="DataLoader workers of the conventional pipeline"
    )
    parser.add_argument(
        "--out", default=str(results_root() / "bench"), help="default: $RESDEG_RESULTS/bench, else results/bench"
    )
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
        rows.append(
            {
                "model": name,
                "harness_img_s": round(a, 1),
                "bare_img_s": round(b, 1),
                "conventional_img_s": round(c, 1),
                "a_over_b": round(a / b, 3),
                "a_over_c": round(a / c, 3),
                "paper_protocol_hours": round(paper_images / a / 3600, 2),
            }
        )
        print(rows[-1], flush=True)
    table = pd.DataFrame(rows)
    device = device_name()
    print(
        f"\ntraining throughput, batch 128, {args.iterations} timed iterations after {args.warmup} warm-up; "
        f"device: {device}"
    )
    print(f"overrides: {' '.join(args.overrides) or '(none)'}")
    print(table.to_string(index=False))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # one file per device and settings: `make bench ARGS="trainer.precision=bf16-mixed"` does not
    # overwrite the default settings' file
    settings = re.sub(r"[^a-z0-9.]+", "-", " ".join(args.overrides).lower()).strip("-")
    path = out / f"bench_{device_slug()}{'_' + settings if settings else ''}.csv"
    table.assign(device=device, iterations=args.iterations, overrides=" ".join(args.overrides)).to_csv(
        path, index=False
    )
    print(f"written: {path}")
    return table


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:  # Ctrl-C: one line, not a traceback (the table is written only at the end)
        print("\n[bench] stopped by Ctrl-C: nothing written", file=sys.stderr)
        sys.exit(130)
