"""ImageNet's training parts: the plateau schedule (/10 when the error stops improving), the
10-crop test averaging softmax over crops."""

import pytest
import torch
from torch import nn


def test_ten_crop_test_averages_softmax_over_crops():
    from resdeg.training.module import ClassifierModule
    from resdeg.training.schedule import PlateauSchedule

    class Fixed(nn.Module):  # logits that depend on the crop: crop 0 votes class 0, others class 1
        def forward(self, x):
            n = x.shape[0]
            logits = torch.zeros(n, 3)
            logits[torch.arange(n) % 10 == 0, 0] = 10.0
            logits[torch.arange(n) % 10 != 0, 1] = 1.0
            return logits

    module = ClassifierModule(Fixed(), PlateauSchedule(0.1), None, top5=True)
    module.on_test_epoch_start()
    module.test_step((torch.zeros(2, 10, 3, 4, 4), torch.tensor([0, 1])), 0)
    metrics = module.test_metrics()
    # averaged probabilities favour class 1 (9 crops) over class 0 (1 confident crop): one of two images wrong
    assert metrics["val_10crop/error"] == 50.0 and metrics["val_10crop/top5_error"] == 0.0


def test_plateau_schedule_divides_by_ten_when_the_error_stops_improving():
    from resdeg.training.schedule import PlateauSchedule

    schedule = PlateauSchedule(base_lr=0.1, patience=2, threshold=0.5, max_drops=2)
    for error in (60.0, 50.0, 49.8, 49.9):  # two evaluations without a 0.5-point gain
        schedule.observe(error)
    assert schedule.lr(12345) == pytest.approx(0.01)
    restored = PlateauSchedule(base_lr=0.1, patience=2, threshold=0.5, max_drops=2)
    restored.load_state_dict(schedule.state_dict())  # what a resumed run gets from its checkpoint
    assert restored.lr(0) == pytest.approx(0.01)
    for error in (49.9, 49.9, 49.9, 49.9, 49.9, 49.9):
        schedule.observe(error)
    assert schedule.lr(0) == pytest.approx(0.001)  # at most max_drops
