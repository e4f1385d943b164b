"""W&B beside the record: the mode chosen without prompting, a resumed run logging nothing twice."""

import pytest


def test_a_resumed_wandb_run_logs_nothing_twice_and_a_forced_rerun_says_so(tmp_path, monkeypatch):
    """A resumed run recomputes the iterations between its checkpoint and the kill; W&B already
    has them, so they are not logged again (read back from the real offline files)."""
    from resdeg.tracking.wandb_files import offline_runs
    from resdeg.tracking.wandb_logger import wandb_logger

    monkeypatch.setenv("WANDB_SILENT", "true")
    identity = {
        "run_id": "resnet-8-A_seed0_x",
        "name": "resnet-8-A",
        "dataset": "cifar10",
        "arch": "residual",
        "depth": 8,
        "shortcut": "A",
        "protocol": "quick-6",
        "seed": 0,
        "protocol_hash": "0123abcd",
    }
    common = dict(identity=identity, config={}, sweep="single", mode="offline", save_dir=str(tmp_path / "wandb"))
    first = wandb_logger(previous_id=None, **common)
    for step in (2, 4):
        first.log_metrics({"train/error": 90.0 - step}, step=step)
    first.experiment.finish()
    resumed = wandb_logger(previous_id=first.version, already_logged={(2, "train/error"), (4, "train/error")}, **common)
    for step in (4, 6):  # resumed from the checkpoint of iteration 2: 4 is recomputed, 6 and the test error are new
        resumed.log_metrics({"train/error": 90.0 - step}, step=step)
    resumed.log_metrics({"test/error": 80.0}, step=6)
    resumed.experiment.finish()
    rerun = wandb_logger(previous_id=None, forced=True, **common)
    rerun.experiment.finish()
    # runs started within one second sort by id in their folder names: the order is the start time
    (rerun_folder,) = [p.parent for p in (tmp_path / "wandb").rglob("run-*.wandb") if rerun.version in p.name]
    rerun_folder.rename(rerun_folder.with_name("offline-run-00000000_000000-" + rerun.version))

    runs = offline_runs(tmp_path / "wandb", wait_s=60)
    assert [r.id for r in runs[:2]] == [first.version, first.version] and runs[2].id != first.version
    steps = [
        (row["trainer/global_step"], key)
        for r in runs[:2]
        for row in r.history
        for key in row
        if "/" in key and not key.startswith(("_", "trainer"))
    ]
    assert steps == [(2, "train/error"), (4, "train/error"), (6, "train/error"), (6, "test/error")]
    assert runs[2].name == "resnet-8-A-seed0-rerun" and "forced-rerun" in runs[2].tags

    # a file W&B is still writing (its writer runs on after finish() returns): cut mid-record, it
    # reads up to the cut, without its exit record, and a reader that waits gives up at wait_s
    data = runs[0].path.read_bytes()
    cut = tmp_path / "writing" / "offline-run-00000000_000000-cut" / "run-cut.wandb"
    cut.parent.mkdir(parents=True)
    cut.write_bytes(data[: len(data) - 50])
    (writing,) = offline_runs(tmp_path / "writing", wait_s=0.3)
    assert writing.name == "resnet-8-A-seed0" and writing.exit_code is None


def test_wandb_mode_is_chosen_without_prompting(monkeypatch, tmp_path):
    from resdeg import ResdegError
    from resdeg.tracking.wandb_mode import choose_mode

    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert choose_mode("auto") == "offline"
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    assert choose_mode("auto") == "online"
    monkeypatch.delenv("WANDB_API_KEY")
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password " + "y" * 40 + "\n")
    (tmp_path / ".netrc").chmod(0o600)
    assert choose_mode("auto") == "online"
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert choose_mode("auto") == "offline"  # WANDB_MODE overrides auto
    assert choose_mode("disabled") == "disabled"  # and the config value overrides both
    with pytest.raises(ResdegError, match="online, offline, disabled"):
        choose_mode("cloud")
