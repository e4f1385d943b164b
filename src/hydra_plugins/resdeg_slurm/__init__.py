"""resdeg's SLURM launcher: Hydra's submitit launcher, except at the sweep's end.

Hydra's ``SlurmLauncher.launch`` returns ``[j.results()[0] for j in jobs]``: the first job that
ended without a result (cancelled, killed, out of memory) or whose run raised (submitit's
"Job not requeued because: timed-out too many times") raises there, the sweep crashes with a
traceback and the other jobs' outcomes are never read. Here every job is waited for; one that
did not complete is noted, with its SLURM state and log, in the sweep's list of jobs that did
not complete, which ``resdeg.launch.sweep_outcome.SweepOutcome`` prints before the sweep exits 2, as it does
for the local launchers. (Hydra requires a launcher to live in the ``hydra_plugins`` package.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from omegaconf import OmegaConf

from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher, log


class ResdegSlurmLauncher(SlurmLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit

        from resdeg.launch.sweep_outcome import write_job_not_complete

        assert self.config is not None
        # the executor and the array, as hydra_submitit_launcher 1.2's SlurmLauncher.launch builds them
        init_keys = {"max_num_timeout", "submitit_folder"}
        executor = submitit.AutoExecutor(
            cluster=self._EXECUTOR,
            folder=self.params["submitit_folder"],
            **{f"{self._EXECUTOR}_max_num_timeout": self.params["max_num_timeout"]},
        )
        queue_keys = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(
            **{
                key if key in queue_keys else f"{self._EXECUTOR}_{key}": value
                for key, value in self.params.items()
                if key not in init_keys
            }
        )
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        log.info(f"Submitit '{self._EXECUTOR}' sweep output dir : {sweep_dir}")
        job_params: list[Any] = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info(f"\t#{idx} : {' '.join(filter_overrides(overrides))}")
            job_params.append((list(overrides), "hydra.sweep.dir", idx, f"job_id_for_{idx}", Singleton.get_state()))
        jobs = executor.map_array(self, *zip(*job_params))

        returns = []
        for job, (overrides, _, idx, _, _) in zip(jobs, job_params):
            try:
                returned = job.results()[0]
                reason = None if returned.status == JobStatus.COMPLETED else _first_line(returned._return_value)
            except submitit.core.utils.UncompletedJobError as exc:
                returned, reason = None, f"SLURM job {job.job_id} ended {job.state}: {_first_line(exc)}"
            if reason is not None:
                write_job_not_complete(sweep_dir, idx, overrides, f"{reason} (its log: {job.paths.stdout})")
                # Hydra's sweeper raises a failed job's error at once; the sweep's end reports it instead
                returned = JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED, _return_value=None)
            returns.append(returned)
        return returns


def _first_line(error: object) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
