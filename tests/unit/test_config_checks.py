"""Every bad value is refused up front, in one message naming the key, before anything is written."""

import pytest

from conftest import BAD, run_cli, write_cifar_folder


@pytest.mark.parametrize("override,message", BAD, ids=[b[0] for b in BAD])
def test_a_bad_value_is_refused_with_one_message_before_anything_is_written(tmp_path, override, message):
    from conftest import train_here
    from resdeg import ResdegError

    data = write_cifar_folder(tmp_path / "data")
    with pytest.raises(ResdegError) as refused:
        train_here(
            "protocol=cifar_quick",
            f"data.root={data}",
            f"paths.results={tmp_path / 'results'}",
            f"paths.experiments={tmp_path / 'exp'}",
            override,
        )
    assert message in str(refused.value) and "\n" not in str(refused.value)
    assert not (tmp_path / "results").exists() and not (tmp_path / "exp").exists()  # nothing written, nothing marked


def test_the_shipped_configs_pass_the_checks():
    from hydra import compose, initialize_config_dir

    from conftest import REPO
    from resdeg.config_checks import check_config

    for overrides in (
        ["protocol=cifar_paper"],
        ["protocol=cifar_quick"],
        ["protocol=cifar_paper_warmup"],
        ["experiment=degradation_imagenet"],
        ["data.val_size=5000"],
    ):
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            check_config(compose(config_name="config", overrides=overrides))


def test_a_gpu_asked_for_where_none_is_usable_is_refused_up_front(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is usable here: trainer.accelerator=gpu is a valid request")
    data = write_cifar_folder(tmp_path / "data")
    result = run_cli(
        "protocol=cifar_quick",
        f"data.root={data}",
        f"paths.results={tmp_path / 'results'}",
        f"paths.experiments={tmp_path / 'exp'}",
        "trainer.accelerator=gpu",
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2 and "trainer.accelerator=gpu but no CUDA GPU is usable here" in output, output[-3000:]
    assert not (tmp_path / "results").exists()


@pytest.fixture
def gpu_this_torch_cannot_use(tmp_path, monkeypatch):
    """A machine with an NVIDIA device node and a driver older than this torch's CUDA: faked by
    pointing resdeg.devices at a folder holding ``nvidia0`` and a /proc-style version file."""
    import torch

    from resdeg import devices

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is usable here: the preflight has nothing to refuse")
    (tmp_path / "dev").mkdir()
    (tmp_path / "dev" / "nvidia0").touch()
    (tmp_path / "version").write_text("NVRM version: NVIDIA UNIX x86_64 Kernel Module  470.57.02  Tue Jul 13 2021\n")
    monkeypatch.setattr(devices, "DEVICE_NODES", tmp_path / "dev")
    monkeypatch.setattr(devices, "DRIVER_VERSION_FILE", tmp_path / "version")


def test_a_gpu_this_torch_cannot_use_stops_a_gpu_protocol_with_the_driver_and_the_fix(gpu_this_torch_cannot_use):
    """Where the driver is older than the torch build's CUDA, torch sees no GPU: a paper-protocol
    run would have trained on the CPU for days without a word. It stops, naming the driver, the
    build's CUDA and the fix; the quick protocol and trainer.accelerator=cpu run on the CPU on purpose."""
    import torch
    from hydra import compose, initialize_config_dir

    from conftest import REPO
    from resdeg import ResdegError, devices
    from resdeg.config_checks import check_config

    reason = devices.unusable_gpu()
    assert "/nvidia0" in reason and "driver 470.57.02" in reason and f"CUDA {torch.version.cuda}" in reason
    assert "--index-url https://download.pytorch.org/whl/cu" in reason and "PROTOCOL=quick" in reason
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        paper = compose(config_name="config", overrides=["protocol=cifar_paper"])
        quick = compose(config_name="config", overrides=["protocol=cifar_quick"])
        on_cpu = compose(config_name="config", overrides=["protocol=cifar_paper", "trainer.accelerator=cpu"])
    with pytest.raises(ResdegError, match="driver 470.57.02"):
        check_config(paper)
    check_config(quick)
    check_config(on_cpu)


def test_without_any_nvidia_device_there_is_nothing_to_refuse(tmp_path, monkeypatch):
    import shutil

    from resdeg import devices

    monkeypatch.setattr(devices, "DEVICE_NODES", tmp_path)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    assert devices.unusable_gpu() is None
