"""Imported by Python at start-up where a test puts this folder on PYTHONPATH: a run with
RESDEG_TEST_HOLD_EVALUATION=<iteration>:<marker file> stops inside its evaluation of that
iteration (its checkpoints of that iteration written before it, as in every run), writes the
marker and waits there until the test deletes it, so that a test's signal lands inside the
evaluation for certain, on a machine of any speed and with a test set of any size."""

import os

HOLD = os.environ.get("RESDEG_TEST_HOLD_EVALUATION")

if HOLD:
    import time
    from pathlib import Path

    from resdeg.training.module import ClassifierModule

    _iteration, _marker = HOLD.split(":", 1)
    _start = ClassifierModule.on_validation_epoch_start
    _held = []

    def on_validation_epoch_start(self) -> None:
        _start(self)
        if self.trainer.global_step == int(_iteration) and not _held:
            _held.append(True)  # the first evaluation of that iteration only
            marker = Path(_marker)
            marker.write_text(f"{os.getpid()}\n")
            deadline = time.monotonic() + 600  # a failed test leaves no process waiting for long
            while marker.exists() and time.monotonic() < deadline:
                time.sleep(0.02)

    ClassifierModule.on_validation_epoch_start = on_validation_epoch_start
