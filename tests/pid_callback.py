"""A Hydra callback for tests: the process ids of a sweep and of its jobs, appended to a file,
with the number of jobs side by side each job was told (resdeg.launch.gpu_share.JOBS_SIDE_BY_SIDE_ENV)."""

import os

from hydra.experimental.callback import Callback


class ProcessIds(Callback):
    def __init__(self, path: str):
        self.path = path

    def _write(self, what: str) -> None:
        with open(self.path, "a") as f:
            f.write(f"{what} {os.getpid()} {os.environ.get('RESDEG_JOBS_SIDE_BY_SIDE', '-')}\n")

    def on_multirun_start(self, config, **kwargs) -> None:
        self._write("sweep")

    def on_job_start(self, config, **kwargs) -> None:
        self._write("job")
