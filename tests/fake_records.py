"""Run records written through the project's own recorder, for the report's tests: a pytest
plugin (tests/conftest.py loads it), so its fixtures serve the unit and the integration tests."""

from __future__ import annotations

import numpy as np
import pytest

from resdeg.training.recorder import RunRecorder


def write_run(
    results,
    arch,
    depth,
    final_train,
    final_test,
    seed=0,
    protocol="quick",
    status="complete",
    iterations=500,
    setting="s1",
    family=None,
):
    name = f"plain-{depth}" if arch == "plain" else f"resnet-{depth}-A"
    identity = {
        "run_id": f"{name}_seed{seed}_{setting}",
        "name": name,
        "group": f"cifar10-{protocol}",
        "dataset": "cifar10",
        "arch": arch,
        "depth": depth,
        "shortcut": None if arch == "plain" else "A",
        "protocol": protocol,
        "protocol_family": family or protocol,
        "seed": seed,
        "protocol_hash": setting,
    }
    rec = RunRecorder(results / "runs" / identity["group"] / identity["run_id"], identity, "seed: 0\n")
    rec.start(parameters=1000 * depth, iterations=iterations)
    steps = np.arange(50, iterations + 1, 50)
    # errors fall from 90% towards the final value
    for it in steps:
        frac = it / iterations
        rec.log_metrics({"train/error": 90 - (90 - final_train) * frac}, step=int(it))
    for it in steps[::5].tolist() + [iterations]:
        rec.log_metrics({"test/error": 90 - (90 - final_test) * it / iterations}, step=int(it))
    if status == "complete":
        rec.finish("complete", final={"train_error": final_train, "test_error": final_test})
    return identity["run_id"]


@pytest.fixture
def degraded(tmp_path):
    for arch, finals in {
        "plain": {20: 57, 32: 62, 44: 70, 56: 78},
        "residual": {20: 45, 32: 43, 44: 42, 56: 41},
    }.items():
        for depth, train_error in finals.items():
            write_run(tmp_path, arch, depth, train_error, train_error - 2)
    return tmp_path
