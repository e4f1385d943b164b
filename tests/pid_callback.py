"""A Hydra callback for tests: the process ids of a sweep and of its jobs, appended to a file."""

import os

from hydra.experimental.callback import Callback


class ProcessIds(Callback):
    def __init__(self, path: str):
        self.path = path

    def _write(self, what: str) -> None:
        with open(self.path, "a") as f:
            f.write(f"{what} {os.getpid()}\n")

    def on_multirun_start(self, config, **kwargs) -> None:
        self._write("sweep")

    def on_job_start(self, config, **kwargs) -> None:
        self._write("job")
