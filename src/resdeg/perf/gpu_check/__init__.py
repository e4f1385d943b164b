"""`make gpu-check`: the GPU path of the harness measured by one command, in 5 minutes by default.

On whatever GPU is present it measures, and writes to ``results/bench/gpu_<device>.csv`` (one
row per measured value, format in results/README.md) and ``gpu_<device>.md``, in this order,
each section within its share of the budget (plan.SECTIONS) plus what earlier ones left:

1. throughput (sections.throughput): training images/s of ResNet-20, ResNet-56 and plain-56 at
   batch 128 for the harness (what a sweep runs: resdeg.build, Lightning, the run record) and a
   bare PyTorch loop (resdeg.perf.timing), in fp32 (TF32 convolutions, cuDNN's default) and
   bf16-mixed, eager; the warm-up time and the peak GPU memory of each;
2. concurrency (sections.concurrency): aggregate images/s of 1, 2, 4 and 8 harness runs of
   ResNet-56 side by side on one GPU (separate processes, timed together: workers.py);
3. syncs (sections.syncs): host-device synchronisations per training step of the harness,
   counted three ways over a window of plain steps: CUDA synchronisation calls in a profiler
   trace (the timers' own left out), ``torch.cuda.set_sync_debug_mode`` warnings, and host
   reads of tensor values (resdeg.training.host_reads, the count the CPU tests check);
4. end to end (sections.end_to_end): a 1,000-iteration paper-protocol run of ResNet-56 through
   the CLI (``python -m resdeg.train``, records in a temporary folder): start-up, step time (as
   the run timed its steps), evaluation time;
5. compiled (sections.throughput): the throughput of 1. under ``compile=reduce-overhead``
   (inductor and CUDA-graph capture), each setting in a worker process of its own;
6. projection (projection.py): one 64k-iteration run and the 8-run degradation sweep for each
   launcher setting, and the runs per GPU that finish the sweep soonest, which
   ``launch.runs_per_gpu=auto`` (the sweeps' default) then uses on this GPU model.

Without a GPU the same command runs a smoke version (tiny nets, a few iterations) in about a
minute and writes to ``experiments/gpu_check/`` instead, so that nothing measured on a CPU is
mistaken for a GPU figure; the test suite runs it so it never rots. What does not fit, or
fails, is a row saying so, never a silent gap, and the files are rewritten after every
section so that a check cut short keeps what it measured.

    python -m resdeg.perf.gpu_check [--smoke] [--budget-s 300] [--out DIR]
"""
