"""The learning-rate schedules as the paper states them: steps at 32k and 48k, the quick family's
shape at any budget, the warm-up."""

import pytest

from resdeg import ResdegError
from resdeg.training.schedule import StepSchedule


def test_paper_schedule_divides_by_10_at_32k_and_48k():
    s = StepSchedule(base_lr=0.1, milestones=[32000, 48000], gamma=0.1)
    assert s.lr(0) == 0.1
    assert s.lr(31999) == 0.1
    assert s.lr(32000) == pytest.approx(0.01)
    assert s.lr(47999) == pytest.approx(0.01)
    assert s.lr(48000) == pytest.approx(0.001)
    assert s.lr(63999) == pytest.approx(0.001)


def test_resnet110_warmup_until_error_below_80():
    s = StepSchedule(base_lr=0.1, milestones=[32000, 48000], warmup="until_error", warmup_lr=0.01)
    assert s.lr(0, warmup_done=False) == 0.01
    assert s.lr(399, warmup_done=False) == 0.01
    assert not s.warmup_ends(85.0)
    assert s.warmup_ends(79.9)
    assert s.lr(400, warmup_done=True) == 0.1
    assert s.lr(40000, warmup_done=True) == pytest.approx(0.01)


def test_linear_warmup_reaches_the_peak_then_steps():
    s = StepSchedule(base_lr=0.05, milestones=[250, 375], warmup="linear", warmup_iterations=150)
    assert s.lr(0) == pytest.approx(0.05 / 150)
    assert s.lr(74) == pytest.approx(0.025)
    assert s.lr(149) == pytest.approx(0.05)
    assert s.lr(249) == pytest.approx(0.05)
    assert s.lr(250) == pytest.approx(0.005)
    assert s.lr(375) == pytest.approx(0.0005)
    # a linear warm-up does not wait for an error threshold
    assert not s.warmup_ends(10.0)


def test_unknown_warmup_is_refused():
    with pytest.raises(ResdegError, match="none, linear, until_error"):
        StepSchedule(base_lr=0.1, warmup="cosine")


def _optimizer():
    import torch

    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)


def test_the_schedule_is_an_lr_scheduler_stepped_per_iteration():
    from resdeg.training.schedule import IterationLR

    optimizer = _optimizer()
    scheduler = IterationLR(
        optimizer, StepSchedule(base_lr=0.05, milestones=[4, 6], warmup="linear", warmup_iterations=2)
    )
    rates = []
    for _ in range(8):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates == pytest.approx([0.025, 0.05, 0.05, 0.05, 0.005, 0.005, 0.0005, 0.0005])


def test_the_warm_up_state_lives_in_the_schedulers_state_dict():
    from resdeg.training.schedule import IterationLR

    rule = dict(base_lr=0.1, milestones=[100], warmup="until_error", warmup_lr=0.01, warmup_check_every=10)
    optimizer = _optimizer()
    scheduler = IterationLR(optimizer, StepSchedule(**rule))
    scheduler.align(10)
    scheduler.training_error(85.0, 10)
    assert optimizer.param_groups[0]["lr"] == 0.01 and scheduler.warmup_done_at is None
    scheduler.training_error(79.0, 20)
    assert optimizer.param_groups[0]["lr"] == 0.1 and scheduler.warmup_done_at == 20
    # what a checkpoint holds brings a fresh scheduler to the same rate, one step behind or not
    restored_optimizer = _optimizer()
    restored = IterationLR(restored_optimizer, StepSchedule(**rule))
    restored.load_state_dict(scheduler.state_dict())
    restored.align(20)
    assert restored.warmup_done_at == 20 and restored_optimizer.param_groups[0]["lr"] == 0.1
    restored.align(100)
    assert restored_optimizer.param_groups[0]["lr"] == pytest.approx(0.01)


def test_the_plateau_rule_drives_the_scheduler():
    from resdeg.training.schedule import IterationLR, PlateauSchedule

    optimizer = _optimizer()
    scheduler = IterationLR(optimizer, PlateauSchedule(base_lr=0.1, patience=2, threshold=0.5))
    for error in (50.0, 49.9, 49.8):  # two evaluations without improving by 0.5 points
        scheduler.validation_error(error)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.01)
    assert scheduler.state_dict()["rule"]["drops"] == 1
