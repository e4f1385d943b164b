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
