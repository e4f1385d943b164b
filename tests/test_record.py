import json
from pathlib import Path

import pandas as pd
import pytest

from resdeg import ResdegError
from conftest import REPO
from resdeg.record import SCHEMA_VERSION, parse_summary, read_summary, write_atomic
from resdeg.training.recorder import RunRecorder

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


# -- the run identity (resdeg.record.identity) ------------------------------------------
def compose_identity(*overrides: str) -> dict:
    from hydra import compose, initialize_config_dir

    from resdeg.record.identity import run_identity

    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return run_identity(compose(config_name="config", overrides=list(overrides)))


IMAGENET = ("data=imagenet", "model=imagenet", "protocol=imagenet_paper")


@pytest.mark.parametrize("change", ["data.scale=[256,256]", "data.crop=192", "data.lighting_std=0.2",
                                    "data.mean_images=100", "data.colour_augment=false", "data.eval_resize=288"])
def test_imagenet_runs_that_differ_in_preprocessing_never_share_a_run_id(change):
    assert compose_identity(*IMAGENET, change)["run_id"] != compose_identity(*IMAGENET)["run_id"]


@pytest.mark.parametrize("change", ["data.root=/elsewhere", "data.loader=torchvision", "data.num_workers=7",
                                    "data.eval_batch_size=1000", "data.on_device=false", "logger=wandb",
                                    "paths.results=/tmp/r", "launch.runs_per_gpu=4", "layer_responses=false"])
def test_where_and_how_a_run_is_loaded_or_logged_is_not_its_identity(change):
    assert compose_identity(change)["run_id"] == compose_identity()["run_id"]


@pytest.mark.parametrize("record", sorted((REPO / "results" / "runs").glob("cifar10-quick-*/*/summary.json")),
                         ids=lambda p: p.parent.name)
def test_committed_records_keep_their_run_ids(record):
    """The identity written as a deny-list gives every committed record the id it was trained
    under, so a sweep skips them instead of training them again."""
    summary = json.loads(record.read_text())
    identity = compose_identity("experiment=budget_cifar", f"protocol.iterations={summary['iterations']}",
                                f"model.arch={summary['arch']}", f"model.depth={summary['depth']}",
                                f"seed={summary['seed']}")
    assert identity["run_id"] == summary["run_id"]


def test_a_plain_net_records_no_shortcut_and_old_records_read_so():
    assert compose_identity("model.arch=plain")["shortcut"] is None
    assert compose_identity("model.arch=residual", "model.shortcut=B")["shortcut"] == "B"
    v1 = {"run_id": "plain-20_seed0_x", "status": "complete", "arch": "plain", "shortcut": "A"}  # schema 1 had no version
    assert parse_summary(json.dumps(v1)) == {**v1, "schema": SCHEMA_VERSION, "shortcut": None}
    with pytest.raises(ValueError, match="update resdeg"):
        parse_summary(json.dumps({**v1, "schema": SCHEMA_VERSION + 1}))


def test_a_record_names_the_code_that_trained_it_and_a_path_a_colleague_can_use(tmp_path, monkeypatch):
    from resdeg.record.layout import portable

    rec = RunRecorder(tmp_path / "run", IDENTITY, "")
    rec.start()
    code = read_summary(tmp_path / "run")["code"]
    assert len(code["commit"]) == 40 and isinstance(code["dirty"], bool)  # tests run from a git checkout
    monkeypatch.chdir(tmp_path)
    assert portable(tmp_path / "experiments" / "checkpoints" / "x") == "experiments/checkpoints/x"
    assert portable(Path("/elsewhere/x")) == "/elsewhere/x"


def test_resnet110s_warm_up_protocol_is_drawn_with_the_paper_protocol():
    """Fig. 6 draws ResNet-110 (warm-up at 0.01) beside ResNet-20 to 56: one setting, one family."""
    plain = compose_identity("protocol=cifar_paper", "model.depth=56")
    deep = compose_identity("protocol=cifar_paper_warmup", "model.depth=110")
    assert deep["protocol_hash"] == plain["protocol_hash"] and deep["protocol_family"] == "paper"
    assert deep["group"] == "cifar10-paper_warmup"  # still its own protocol, folder and config hash
    assert compose_identity("protocol=cifar_paper_warmup", "model.depth=110", "protocol.schedule.base_lr=0.2")[
        "protocol_hash"] != plain["protocol_hash"]
