"""The protocols as composed from conf/: dense test curves in every CIFAR-10 protocol, the
quick family's schedule shape at any budget, and the budget study's runs being the
degradation sweep's runs."""

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import REPO
from resdeg.record.identity import run_identity


def protocol(*overrides: str) -> dict:
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        cfg = compose(config_name="config", overrides=list(overrides))
    return OmegaConf.to_container(cfg.protocol, resolve=True)


def evaluations(p: dict) -> list[int]:
    """The iterations at which a run of protocol ``p`` measures test error (and at its end)."""
    return sorted(set(range(p["eval_every"], p["iterations"] + 1, p["eval_every"])) | {p["iterations"]})


@pytest.mark.parametrize("name", ["cifar_paper", "cifar_paper_warmup", "cifar_quick"])
def test_every_cifar_protocol_draws_a_dense_test_curve(name):
    assert len(evaluations(protocol(f"protocol={name}"))) >= 10


@pytest.mark.parametrize("budget", [200, 500, 1000, 2000, 4000, 64000])
def test_quick_family_keeps_its_shape_at_every_budget(budget):
    p = protocol("protocol=cifar_quick", f"protocol.iterations={budget}")
    assert p["name"] == f"quick-{budget}" and p["family"] == "quick"
    assert p["schedule"]["milestones"] == [budget // 2, budget * 3 // 4]  # lr / 10 at 50% and 75%
    assert evaluations(p) == [budget * k // 10 for k in range(1, 11)]  # test error every 10% of the run
    assert p["iterations"] / p["log_every"] == 20  # the training curve: 20 points


def test_a_budget_study_run_is_the_degradation_sweep_run_of_that_budget():
    def identity(*overrides):
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            return run_identity(compose(config_name="config", overrides=list(overrides)))

    study = identity("experiment=budget_cifar", "protocol.iterations=1000", "model.arch=plain", "model.depth=56")
    sweep = identity(
        "experiment=degradation_cifar",
        "protocol=cifar_quick",
        "protocol.iterations=1000",
        "model.arch=plain",
        "model.depth=56",
    )
    assert study["run_id"] == sweep["run_id"] and study["group"] == "cifar10-quick-1000"
    other = identity(
        "experiment=degradation_cifar",
        "protocol=cifar_quick",
        "protocol.iterations=2000",
        "model.arch=plain",
        "model.depth=56",
    )
    assert other["protocol_hash"] != sweep["protocol_hash"] and other["protocol_family"] == "quick"


def test_the_deep_sweep_draws_with_the_degradation_sweep_on_gpu_and_cpu():
    """experiment=deep_cifar (make sweep-deep): ResNet-110/1202 under the warm-up protocol share
    the degradation sweep's setting (paper), and under the quick family its quick-N setting."""

    def identity(*overrides):
        with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
            return run_identity(compose(config_name="config", overrides=list(overrides)))

    for protocol, deep_protocol in (("cifar_paper", "cifar_paper_warmup"), ("cifar_quick", "cifar_quick")):
        sweep = identity("experiment=degradation_cifar", f"protocol={protocol}", "model.depth=56")
        for depth in (110, 1202):
            deep = identity("experiment=deep_cifar", f"protocol={deep_protocol}", f"model.depth={depth}")
            assert deep["name"] == f"resnet-{depth}-A" and deep["protocol_hash"] == sweep["protocol_hash"]
            assert deep["protocol_family"] == sweep["protocol_family"]


def test_the_evaluation_batch_divides_the_cifar_test_set_and_its_validation_split():
    """No short last batch: under torch.compile it would cost a recompile and a CUDA graph of its own."""
    from conftest import compose_config

    batch = compose_config().data.eval_batch_size
    assert 10_000 % batch == 0 and 5_000 % batch == 0
