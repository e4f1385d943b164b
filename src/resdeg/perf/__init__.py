"""The benchmarks: how fast the harness trains, measured, never asserted.

    timing.py     the three ways of timing a training step (the harness as a sweep runs it,
                  a bare PyTorch loop, a conventional torchvision DataLoader pipeline)
    bench.py      `make bench`: their table on this machine (results/bench/bench_<device>.csv)
    gpu_check/    `make gpu-check`: the GPU path measured in one command (results/bench/gpu_<device>.csv)

Nothing else in the package imports this one; it imports the builder and the training
pieces it times.
"""
