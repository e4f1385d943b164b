"""How a run's ending is recorded (resdeg.training.outcome): a Ctrl-C is the user's stop wherever it lands."""

import json

import pytest

from resdeg import RunStopped
from resdeg.training.outcome import from_ctrl_c, recorded_outcome
from resdeg.training.recorder import RunRecorder

IDENTITY = {
    "run_id": "resnet-8-A_seed0_x",
    "name": "resnet-8-A",
    "group": "cifar10-quick-24",
    "dataset": "cifar10",
    "arch": "residual",
    "depth": 8,
    "shortcut": "A",
    "protocol": "quick-24",
    "seed": 0,
    "protocol_hash": "0123abcd",
}


def started(tmp_path) -> RunRecorder:
    recorder = RunRecorder(tmp_path / "record", IDENTITY, "seed: 0\n")
    recorder.start(iterations=24, iteration=0)
    return recorder


def status(tmp_path) -> dict:
    return json.loads((tmp_path / "record" / "summary.json").read_text())


def test_a_ctrl_c_that_surfaces_inside_a_library_as_another_error_is_recorded_interrupted(tmp_path):
    """A KeyboardInterrupt inside OmegaConf's flag handling surfaced as its ConfigKeyError (seen
    in a sweep stopped while its run was being built): the run is interrupted and the sweep stops,
    not a failed run that lets the sweep go on to its next job."""

    def library_call():
        try:
            raise KeyboardInterrupt
        finally:
            raise ValueError("'NoneType' object has no attribute '_invalidate_flags_cache'")

    recorder = started(tmp_path)
    with pytest.raises(RunStopped, match="stopped by Ctrl-C at iteration 0"):
        with recorded_outcome(recorder, [], "resnet-8-A", tmp_path / "record", tmp_path / "ckpt"):
            library_call()
    assert status(tmp_path)["status"] == "interrupted"


def test_an_error_with_no_ctrl_c_behind_it_is_a_failure(tmp_path):
    recorder = started(tmp_path)
    with pytest.raises(ValueError):
        with recorded_outcome(recorder, [], "resnet-8-A", tmp_path / "record", tmp_path / "ckpt"):
            raise ValueError("a bug")
    summary = status(tmp_path)
    assert summary["status"] == "failed" and summary["message"] == "before training: ValueError: a bug"


def test_from_ctrl_c_follows_causes_and_contexts_and_ends_on_a_cycle():
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as ctrl_c:
            raise RuntimeError("wrapped") from ctrl_c
    except RuntimeError as exc:
        assert from_ctrl_c(exc)
    a, b = ValueError("a"), ValueError("b")
    a.__context__, b.__context__ = b, a
    assert not from_ctrl_c(a) and not from_ctrl_c(None)
