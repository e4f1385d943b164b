"""The run record (resdeg.record): identity and hashes, the schema declared once, writes whole or
not at all, the lock, and the decision to skip, resume or start afresh."""

import json
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO
from resdeg import ResdegError
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


@pytest.mark.parametrize(
    "change",
    [
        "data.scale=[256,256]",
        "data.crop=192",
        "data.lighting_std=0.2",
        "data.mean_images=100",
        "data.colour_augment=false",
        "data.eval_resize=288",
    ],
)
def test_imagenet_runs_that_differ_in_preprocessing_never_share_a_run_id(change):
    assert compose_identity(*IMAGENET, change)["run_id"] != compose_identity(*IMAGENET)["run_id"]


@pytest.mark.parametrize(
    "change",
    [
        "data.root=/elsewhere",
        "data.loader=torchvision",
        "data.num_workers=7",
        "data.eval_batch_size=1000",
        "data.on_device=false",
        "logger=wandb",
        "paths.results=/tmp/r",
        "launch.runs_per_gpu=4",
        "layer_responses=false",
    ],
)
def test_where_and_how_a_run_is_loaded_or_logged_is_not_its_identity(change):
    assert compose_identity(change)["run_id"] == compose_identity()["run_id"]


@pytest.mark.parametrize(
    "record", sorted((REPO / "results" / "runs").glob("cifar10-quick-*/*/summary.json")), ids=lambda p: p.parent.name
)
def test_committed_records_keep_their_run_ids(record):
    """The identity written as a deny-list gives every committed record the id it was trained
    under, so a sweep skips them instead of training them again."""
    summary = json.loads(record.read_text())
    identity = compose_identity(
        "experiment=budget_cifar",
        f"protocol.iterations={summary['iterations']}",
        f"model.arch={summary['arch']}",
        f"model.depth={summary['depth']}",
        f"seed={summary['seed']}",
    )
    assert identity["run_id"] == summary["run_id"]


def test_a_plain_net_records_no_shortcut_and_a_record_of_another_schema_is_named_not_read():
    assert compose_identity("model.arch=plain")["shortcut"] is None
    assert compose_identity("model.arch=residual", "model.shortcut=B")["shortcut"] == "B"
    record = {
        "schema": SCHEMA_VERSION,
        "run_id": "plain-20_seed0_x",
        "status": "complete",
        "arch": "plain",
        "shortcut": None,
    }
    assert parse_summary(json.dumps(record)) == record
    with pytest.raises(ValueError, match="update resdeg"):
        parse_summary(json.dumps({**record, "schema": SCHEMA_VERSION + 1}))
    with pytest.raises(ValueError, match="schema version is None, this resdeg reads version 2: train it again"):
        parse_summary(json.dumps({key: value for key, value in record.items() if key != "schema"}))


def test_every_committed_record_is_of_the_current_schema():
    summaries = sorted((REPO / "results" / "runs").glob("*/*/summary.json"))
    assert summaries
    old = [str(p.relative_to(REPO)) for p in summaries if json.loads(p.read_text()).get("schema") != SCHEMA_VERSION]
    assert not old, old


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
    assert (
        compose_identity("protocol=cifar_paper_warmup", "model.depth=110", "protocol.schedule.base_lr=0.2")[
            "protocol_hash"
        ]
        != plain["protocol_hash"]
    )


def _interrupted_record(tmp_path, iteration: int, history_rows):
    """A record left by a killed run, its checkpoint at ``iteration``, its history as given (None: deleted)."""
    import json

    import torch

    from resdeg.record import history_csv
    from resdeg.record.layout import RunFolders

    folders = RunFolders(record=tmp_path / "results" / "runs" / "g" / "r", checkpoints=tmp_path / "ckpt")
    folders.record.mkdir(parents=True)
    folders.checkpoints.mkdir()
    (folders.record / "summary.json").write_text(json.dumps({"schema": 2, "run_id": "r", "status": "running"}))
    if history_rows is not None:
        (folders.record / "history.csv").write_text(history_csv(history_rows))
    torch.save({"global_step": iteration}, folders.checkpoints / "last.ckpt")
    return folders


def test_a_lost_history_is_refused_not_resumed_over(tmp_path):
    from resdeg import ResdegError
    from resdeg.record.decision import decide

    folders = _interrupted_record(tmp_path, 40, None)
    with pytest.raises(ResdegError, match="has no history.csv, but its checkpoint is at iteration 40.*force=true"):
        decide(folders, "resnet-8-A", force=False, log_every=5)
    assert decide(folders, "resnet-8-A", force=True, log_every=5).action == "fresh"  # the named way out


def test_a_history_shorter_than_its_checkpoint_is_refused(tmp_path):
    from resdeg import ResdegError
    from resdeg.record.decision import decide

    rows = [(it, "train", "error", 80.0) for it in (5, 10, 15, 20)]
    with pytest.raises(ResdegError, match="history.csv ends at iteration 20, but its checkpoint is at iteration 40"):
        decide(_interrupted_record(tmp_path / "a", 40, rows), "resnet-8-A", force=False, log_every=5)
    # complete up to the last interval closed before the checkpoint (35; the one ending at 40 is open): resumed
    rows += [(it, "train", "error", 80.0) for it in (25, 30, 35)]
    decision = decide(_interrupted_record(tmp_path / "b", 40, rows), "resnet-8-A", force=False, log_every=5)
    assert decision.action == "resume" and decision.iteration == 40


def test_a_checkpoint_of_another_run_or_net_is_refused_before_training(tmp_path):
    import torch

    from resdeg import ResdegError
    from resdeg.models import CifarNet
    from resdeg.record.decision import check_checkpoint_is_this_run

    ours = {f"model.{k}": v for k, v in CifarNet("residual", 8).state_dict().items()}
    deeper = {f"model.{k}": v for k, v in CifarNet("residual", 14).state_dict().items()}
    path = tmp_path / "last.ckpt"
    torch.save({"global_step": 4, "state_dict": deeper}, path)  # written before checkpoints named their run
    with pytest.raises(ResdegError, match=r"holds another network \(\d+ parameters differ, e\.g\. .*force=true"):
        check_checkpoint_is_this_run(path, "resnet-8-A_seed0_x", ours)
    torch.save({"global_step": 4, "state_dict": ours, "resdeg": {"run_id": "resnet-8-A_seed1_y"}}, path)
    with pytest.raises(ResdegError, match=r"is another run's \(resnet-8-A_seed1_y\)"):
        check_checkpoint_is_this_run(path, "resnet-8-A_seed0_x", ours)
    torch.save({"global_step": 4, "state_dict": ours, "resdeg": {"run_id": "resnet-8-A_seed0_x"}}, path)
    check_checkpoint_is_this_run(path, "resnet-8-A_seed0_x", ours)  # its own: taken
    # its own, but written on a GPU: continuing on the CPU would splice two runs (another random stream)
    torch.save(
        {"global_step": 4, "state_dict": ours, "resdeg": {"run_id": "resnet-8-A_seed0_x", "device": "cuda"}}, path
    )
    with pytest.raises(ResdegError, match=r"written on cuda, and this run would go on on cpu: .*force=true"):
        check_checkpoint_is_this_run(path, "resnet-8-A_seed0_x", ours, device="cpu")
    check_checkpoint_is_this_run(path, "resnet-8-A_seed0_x", ours, device="cuda")


def _race_for(folder, barrier, results) -> None:
    import time

    from resdeg import ResdegError
    from resdeg.record import lock as lock_module
    from resdeg.record.lock import RunLock

    alive = lock_module._alive

    def slow_alive(pid: int) -> bool:  # every racer judges the lock stale before any removes it
        time.sleep(0.02)
        return alive(pid)

    lock_module._alive = slow_alive  # this racer's own process (forked)
    lock = RunLock(folder)
    barrier.wait()
    try:
        lock.acquire()
    except ResdegError:
        results.put(False)
        return
    results.put(True)
    time.sleep(0.5)  # held while the others try: a second holder would be counted
    lock.release()


def test_taking_over_a_stale_lock_has_one_winner_among_many_racers(tmp_path):
    """8 processes at once on a lock whose process is gone: exactly one takes it, every round.
    Deleting the stale file and creating one's own is not atomic: a racer that read the same stale
    owner and deletes after another has taken the lock deletes *its* lock. Each racer here takes
    20 ms to judge the lock stale, so all of them read it before any deletes it."""
    import multiprocessing
    import platform

    context = multiprocessing.get_context("fork")
    for round_ in range(12):
        folder = tmp_path / f"round{round_}"
        folder.mkdir()
        (folder / "run.lock").write_text(f"{platform.node()} 999999999\n")  # no such process
        barrier, results = context.Barrier(8), context.Queue()
        racers = [context.Process(target=_race_for, args=(folder, barrier, results)) for _ in range(8)]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join(30)
        won = [results.get(timeout=5) for _ in racers]
        assert won.count(True) == 1, (round_, won)
        assert not (folder / "run.lock").exists() and not (folder / "run.lock.takeover").exists()


def test_every_summary_key_is_declared_once_and_documented():
    """SUMMARY_KEYS is the one declaration: results/README.md's summary table documents exactly
    those keys, every committed record uses only them, and a summary with another is refused."""
    import json
    import re

    from conftest import REPO
    from resdeg.record.schema import SUMMARY_KEYS, summary_json

    readme = (REPO / "results" / "README.md").read_text()
    table = readme.split("## `summary.json`")[1].split("\n## ")[0]
    documented = {
        key
        for row in table.splitlines()
        if row.startswith("| `")
        for key in re.findall(r"`([a-z_0-9]+)`", row.split(" | ")[0])
    }
    assert documented == set(SUMMARY_KEYS)
    for path in sorted((REPO / "results" / "runs").glob("*/*/summary.json")):
        assert set(json.loads(path.read_text())) <= set(SUMMARY_KEYS), path
    with pytest.raises(ValueError, match=r"\['colour'\] are not declared"):
        summary_json({"run_id": "x", "status": "complete", "colour": "blue"})


def test_a_process_srun_started_takes_the_decision_file_not_a_decision_left_in_its_environment(tmp_path, monkeypatch):
    """Under srun every task inherits the submitting shell's environment: a decision another run
    left there (the first process of any run sets it for Lightning's children) is not this
    launch's. The later process reads the first process's file for this launch."""
    import json

    import torch

    from resdeg.record.decision import DECISION_ENV, decide
    from resdeg.record.layout import RunFolders

    folders = RunFolders(record=tmp_path / "record", checkpoints=tmp_path / "ckpt", decisions=tmp_path / "decisions")
    folders.checkpoints.mkdir()
    torch.save({"global_step": 7}, folders.checkpoints / "last.ckpt")
    for key, value in {"SLURM_JOB_ID": "7", "SLURM_PROCID": "1", "SLURM_NTASKS": "2", "SLURM_STEP_ID": "0"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv(DECISION_ENV, f"resume:{tmp_path / 'another_run' / 'last.ckpt'}")
    folders.decisions.mkdir()
    (folders.decisions / "slurm-7-0-0.json").write_text(
        json.dumps({"action": "resume", "checkpoint": str(folders.checkpoints / "last.ckpt")})
    )
    decision = decide(folders, "resnet-8-A", force=False, rank=1, timeout_s=5)
    assert decision.action == "resume" and decision.checkpoint == folders.checkpoints / "last.ckpt"
    assert decision.iteration == 7
