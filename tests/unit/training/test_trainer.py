"""The Trainer as built for a run: a compiled net keeps the eager checkpoint keys; deterministic
turns cuDNN's benchmark off."""

import pytest

from conftest import compose_config


def test_a_compiled_net_keeps_the_eager_checkpoint_keys():
    """compile=... compiles the network in place, so a compiled run's checkpoint resumes
    uncompiled and back (torch.compile's wrapper would prefix every key with _orig_mod.)."""
    from resdeg import ResdegError
    from resdeg.build import build_parts, compile_mode

    eager_keys = build_parts(compose_config("model.depth=8")).module.state_dict().keys()
    for mode in ("true", "reduce-overhead"):
        compiled = build_parts(compose_config("model.depth=8", f"compile={mode}")).module
        assert compiled.model._compiled_call_impl is not None  # compiled (lazily, at the first forward)
        assert compiled.state_dict().keys() == eager_keys
    assert compile_mode(False) is None and compile_mode(True) == "default"
    with pytest.raises(ResdegError, match="reduce-overhead"):
        compile_mode("fastest")


def test_deterministic_turns_cudnn_benchmark_off():
    """trainer.deterministic=true (the exact-resume tests ask it) with cuDNN's benchmark on would
    let twin and resumed processes time and pick different convolution algorithms on a GPU."""
    import torch

    from resdeg.build import build_trainer

    build_trainer(compose_config("trainer.deterministic=true"), logger=False)
    assert torch.backends.cudnn.benchmark is False
    build_trainer(compose_config(), logger=False)  # the default: benchmark on, as conf/trainer/default.yaml says
    assert torch.backends.cudnn.benchmark is True
