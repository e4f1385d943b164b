"""The SLURM launcher's config: the documented keys compose, a CPU cluster needs only gpus_per_node=0."""

from conftest import REPO, paths


def slurm_launcher(tmp_path, *overrides: str) -> dict:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(
            config_name="config",
            return_hydra_config=True,
            overrides=["experiment=degradation_cifar", "hydra/launcher=slurm", *overrides, *paths(tmp_path)],
        )
    return OmegaConf.to_container(cfg.hydra.launcher, resolve=True)


def test_slurm_launcher_composes_with_the_documented_keys(tmp_path):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    launcher = slurm_launcher(tmp_path, "hydra.launcher.partition=gpu", "hydra.launcher.gpus_per_node=2")
    assert launcher["_target_"] == "hydra_plugins.resdeg_slurm.ResdegSlurmLauncher"
    assert launcher["partition"] == "gpu" and launcher["gpus_per_node"] == 2 and launcher["tasks_per_node"] == 2
    assert launcher["timeout_min"] == 240 and launcher["array_parallelism"] == 16 and launcher["signal_delay_s"] == 120
    assert launcher["max_num_timeout"] == 20  # a job at its time limit is requeued, not given up
    assert launcher["cpus_per_task"] == 8 and launcher["mem_gb"] == 64  # 32 GB per GPU of the node
    assert launcher["submitit_folder"] == str(tmp_path / "experiments" / "slurm" / "%j")
    # a dry instantiation: the launcher accepts every key (tests/integration/test_slurm.py submits with it)
    plugin = instantiate(OmegaConf.create(launcher))
    assert type(plugin).__name__ == "ResdegSlurmLauncher" and plugin.params["partition"] == "gpu"


def test_a_cpu_cluster_needs_only_gpus_per_node_0(tmp_path):
    """sbatch refuses 0 tasks per node and waits forever for more cores than a node has; 0 GB
    means the whole node. With gpus_per_node=0 the other values are a CPU node's."""
    cpu = slurm_launcher(tmp_path, "hydra.launcher.partition=cpu", "hydra.launcher.gpus_per_node=0")
    assert (cpu["tasks_per_node"], cpu["cpus_per_task"], cpu["mem_gb"]) == (1, 2, 8)
    gpu = slurm_launcher(tmp_path)  # the defaults: one GPU
    assert (gpu["gpus_per_node"], gpu["tasks_per_node"], gpu["cpus_per_task"], gpu["mem_gb"]) == (1, 1, 8, 32)
    assert (
        slurm_launcher(tmp_path, "hydra.launcher.gpus_per_node=0", "hydra.launcher.cpus_per_task=16")["cpus_per_task"]
        == 16
    )
