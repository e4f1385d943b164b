"""gpu-check's parts that run without a GPU: the time budget's shares, the sync count, peak memory."""

import pytest
import torch


# -- the measurements' own corrections, shown on a CPU ------------------------------------------
def test_the_sync_count_leaves_out_the_timers_own_synchronisations():
    """A profiler window over sync-free steps holds the stopwatch's and the window's own
    synchronize calls: marked (resdeg.perf.timing.own_sync), they are not counted as the steps'."""
    from types import SimpleNamespace

    from resdeg.perf.gpu_check.sections import training_syncs
    from resdeg.perf.timing import OWN_SYNC

    def event(name, start, end):
        return SimpleNamespace(name=name, time_range=SimpleNamespace(start=start, end=end))

    own = [
        event(OWN_SYNC, 0, 10),
        event("cudaDeviceSynchronize", 2, 8),
        event(OWN_SYNC, 900, 950),
        event("cudaStreamSynchronize", 910, 940),
    ]
    steps = [event("aten::conv2d", 20 + 10 * k, 25 + 10 * k) for k in range(40)]
    assert training_syncs(own + steps) == 0  # a sync-free step: 0, not 2 / 40
    assert training_syncs(own + steps + [event("cudaMemcpy", 400, 401)]) == 1  # an .item() in a step is counted


def test_a_peak_memory_measurement_starts_after_the_previous_measurements_objects_are_collected():
    """Lightning's trainer, module and data module sit in reference cycles: uncollected, the
    previous measurement's CIFAR copy on the GPU would inflate every later peak."""
    import weakref

    from resdeg.perf.timing import fresh_peak_memory

    class Held:
        pass

    previous = Held()
    previous.cycle, previous.data = previous, torch.zeros(1000)
    gone = weakref.ref(previous)
    del previous
    fresh_peak_memory()
    assert gone() is None


def test_the_budget_gives_each_section_its_share_and_the_compiled_settings_their_own():
    """Sections run in order (one GPU's throughput and the runs-per-GPU table first); a section
    may use what earlier ones left, never a later one's share; the default budget is 5 minutes."""
    from resdeg.perf.gpu_check.plan import FULL, SECTIONS, SMOKE, Clock

    assert FULL.budget_s == 300 and SMOKE.budget_s == 300
    assert [name for name, _ in SECTIONS][:2] == ["throughput", "concurrency"]
    assert sum(share for _, share in SECTIONS) == pytest.approx(1.0)
    clock = Clock(1000)
    clock.start("throughput")
    assert 240 < clock.left() <= 250
    clock.start("concurrency")  # throughput finished at once: its time is concurrency's too
    assert 490 < clock.left() <= 500
    clock.start("compiled")
    assert 990 < clock.left() <= 1000
    shares = dict(SECTIONS)
    assert shares["compiled"] >= 0.25  # the compiled settings' own, at the end
