"""What a run says it costs: the evaluations left and the expected wall time."""

from resdeg.training.pace import duration_words, evaluations_left, expected_seconds


def test_evaluations_left_count_the_cadence_and_a_final_one_off_it():
    assert evaluations_left(0, 500, 50) == 10  # 50, 100, ..., 500
    assert evaluations_left(50, 500, 50) == 9  # the one at 50 is done (the line comes after it)
    assert evaluations_left(20, 64000, 1000) == 64
    assert evaluations_left(0, 24, 10) == 3  # 10, 20 and the final one at 24
    assert evaluations_left(24, 24, 10) == 0


def test_expected_wall_time_adds_training_and_evaluations():
    # ResNet-20 on a slow 2-core machine: 0.2 s per iteration, 6 s per evaluation, the paper's protocol
    seconds = expected_seconds(64000, 0.2, 64, 6.0)
    assert seconds == 64000 * 0.2 + 64 * 6
    assert duration_words(seconds) == "3.7 h" and duration_words(1500) == "25 min"
