"""Imported by Python at start-up where a test puts this folder on PYTHONPATH: counts the
collectives (torch.distributed calls made from Python) that each process of a DDP run makes
inside its training steps, by iteration, and writes them to $RESDEG_TEST_COLLECTIVES/<pid>.json
at exit. DDP's gradient all-reduce (its C++ reducer) is not a Python call and is not counted."""

import atexit
import json
import os
import sys
from collections import Counter

OUT = os.environ.get("RESDEG_TEST_COLLECTIVES")
NAMES = (
    "all_reduce",
    "broadcast",
    "broadcast_object_list",
    "all_gather",
    "all_gather_object",
    "reduce",
    "barrier",
    "gather_object",
    "scatter_object_list",
    "all_gather_into_tensor",
    "reduce_scatter_tensor",
)

if OUT:
    import torch.distributed as dist

    per_iteration: Counter = Counter()
    callers: Counter = Counter()  # who made them: for a failing test's message

    def _training_step():
        """The iteration whose training step (Lightning's epoch loop ``advance``) makes this call, or None."""
        frame = sys._getframe(2)
        while frame is not None:
            if frame.f_code.co_name == "advance" and frame.f_code.co_filename.endswith("training_epoch_loop.py"):
                return int(frame.f_locals["self"].trainer.global_step)
            frame = frame.f_back
        return None

    def _counted(function):
        def call(*args, **kwargs):
            step = _training_step()
            if step is not None:
                per_iteration[step] += 1
                caller = sys._getframe(1)
                while caller is not None and "/torch/" in caller.f_code.co_filename:
                    caller = caller.f_back
                code = caller.f_code if caller is not None else None
                where = f"{code.co_filename.rsplit('/', 2)[-1]}:{code.co_name}" if code else "?"
                callers[f"{function.__name__} from {where}"] += 1
            return function(*args, **kwargs)

        return call

    for _name in NAMES:
        if hasattr(dist, _name):
            setattr(dist, _name, _counted(getattr(dist, _name)))

    @atexit.register
    def _write():
        if per_iteration:
            with open(os.path.join(OUT, f"{os.getpid()}.json"), "w") as f:
                json.dump({"per_iteration": per_iteration, "callers": callers}, f)
