import json

import pandas as pd
import pytest

from resdeg import ResdegError
from resdeg.training.recorder import RunRecorder, read_summary, write_atomic

IDENTITY = {"run_id": "plain-20_seed0_abc", "name": "plain-20", "arch": "plain", "depth": 20}


def test_record_is_written_as_the_run_goes(tmp_path):
    rec = RunRecorder(tmp_path / "run", IDENTITY, "model:\n  depth: 20\n")
    rec.start(parameters=123, iterations=100)
    summary = read_summary(tmp_path / "run")
    assert summary["status"] == "running" and summary["parameters"] == 123
    assert (tmp_path / "run" / "config.yaml").read_text() == "model:\n  depth: 20\n"

    rec.log_metrics({"train/error": 80.0, "train/loss": 2.0}, step=10)
    rec.log_metrics({"test/error": 85.5}, step=10)
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert list(history.columns) == ["iteration", "split", "metric", "value"]
    assert history.to_dict("records")[2] == {"iteration": 10, "split": "test", "metric": "error", "value": 85.5}
    assert read_summary(tmp_path / "run")["iteration"] == 10

    rec.finish("complete", final={"train_error": 80.0})
    summary = read_summary(tmp_path / "run")
    assert summary["status"] == "complete" and summary["final"] == {"train_error": 80.0}
    assert "finished_at" in summary and summary["versions"]["torch"]


def test_atomic_write_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "summary.json"
    write_atomic(target, json.dumps({"a": 1}))
    write_atomic(target, json.dumps({"a": 2}))
    assert json.loads(target.read_text()) == {"a": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_unwritable_results_folder_names_the_fix(tmp_path):
    blocker = tmp_path / "results"
    blocker.write_text("a file where a folder should be")
    rec = RunRecorder(blocker / "runs" / "x", IDENTITY, "")
    with pytest.raises(ResdegError, match="paths.results"):
        rec.start()
