"""resdeg's parallel launcher: Hydra's joblib launcher, with its number of parallel jobs
decided when the sweep launches.

``n_jobs: auto`` (conf/hydra/launcher/parallel.yaml) is ``launch.runs_per_gpu`` runs on each GPU
of the machine, or ``launch.cpu_jobs`` without a GPU (resdeg.launch.gpu_share.parallel_jobs). It is
decided here, as the jobs start, and not while the config is composed: ``runs_per_gpu: auto``
reads what `make gpu-check` measured on this GPU model (results/bench/), and composing a
config reads no output file. A number (``hydra.launcher.n_jobs=3``) is taken as given.

Where that number is 1 (one GPU that holds one run), the jobs still run in a worker process,
one after another, as they do for any other number: joblib would run them inside the sweep's
own process, which then holds the GPU's context and dies with a job that crashes it.
(Hydra requires a launcher to live in the ``hydra_plugins`` package.)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from hydra.core.utils import JobReturn

from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher


class ResdegParallelLauncher(JoblibLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        if str(self.joblib.get("n_jobs")) == "auto":
            self.joblib["n_jobs"] = decided_jobs(self.config)
        # each job shares the node's cores with the others (its workers inherit this); resdeg is
        # imported only here: Hydra imports every plugin whenever it composes a config
        from resdeg.launch.gpu_share import JOBS_SIDE_BY_SIDE_ENV

        os.environ[JOBS_SIDE_BY_SIDE_ENV] = str(min(int(self.joblib["n_jobs"]), len(job_overrides)))
        if int(self.joblib["n_jobs"]) != 1:
            return super().launch(job_overrides, initial_job_idx)
        return self._one_worker(job_overrides, initial_job_idx)

    def _one_worker(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[JobReturn]:
        """The jobs one after another in one loky worker, as joblib's own workers run them."""
        from hydra.core.singleton import Singleton
        from hydra.core.utils import configure_log, filter_overrides, setup_globals
        from joblib.externals.loky import get_reusable_executor

        from hydra_plugins.hydra_joblib_launcher._core import execute_job, log

        setup_globals()
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        log.info(f"one job at a time, in a worker process: {len(job_overrides)} jobs")
        worker = get_reusable_executor(max_workers=1)
        returns = []
        for idx, overrides in enumerate(job_overrides):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            returns.append(
                worker.submit(
                    execute_job,
                    initial_job_idx + idx,
                    overrides,
                    self.hydra_context,
                    self.config,
                    self.task_function,
                    Singleton.get_state(),
                ).result()
            )
        return returns


def decided_jobs(config) -> int:
    from resdeg.launch.gpu_share import parallel_jobs, runs_per_gpu

    runs = runs_per_gpu(config.launch.runs_per_gpu, Path(str(config.paths.results)) / "bench", str(config.data.name))
    return parallel_jobs(runs, int(config.launch.cpu_jobs))
