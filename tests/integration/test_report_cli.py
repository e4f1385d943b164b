"""The report CLI and the notebook on real short runs and on record trees with torn records."""

import subprocess
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO
from fake_records import write_run
from resdeg.report.__main__ import main as report_main
from resdeg.report.load import load_results


def test_cli_draws_each_protocol_separately_and_skips_a_torn_record(degraded, capsys):
    write_run(degraded, "plain", 20, 10, 9, protocol="paper", iterations=64000)
    torn = degraded / "runs" / "cifar10-quick" / "plain-44_seed0_s1" / "summary.json"
    torn.write_text(torn.read_text()[:40])  # cut by hand mid-file
    assert report_main(["all", "--results", str(degraded)]) == 0
    err = capsys.readouterr().err
    assert "plain-44_seed0_s1: skipped, the record cannot be read" in err
    figures = {p.name for p in (degraded / "figures").iterdir()}
    assert {
        "fig6_cifar10_quick.png",
        "fig6_cifar10_quick.pdf",
        "fig1_cifar10_paper.png",
        "fig6_cifar10_paper.pdf",
    } <= figures
    assert "plain-44" in (degraded / "tables" / "degradation_verdict_quick.md").read_text()  # named as missing
    csv = pd.read_csv(degraded / "tables" / "table6_cifar10_quick.csv")
    assert csv["method"].tolist() == ["ResNet-20", "ResNet-32", "ResNet-44", "ResNet-56", "ResNet-110", "ResNet-1202"]
    assert (degraded / "tables" / "table6_cifar10_quick.tex").read_text().startswith("\\begin{table}")


def test_report_on_real_short_runs(small_cifar, tmp_path):
    """Records written by real training runs (plain-8 and ResNet-8, on conftest.small_cifar: what
    is tested is the records, not the data) go through the report: the table's number is the
    record's, the figure has both runs."""
    import json

    from conftest import paths, train_here

    for arch in ("plain", "residual"):
        train_here(
            f"model.arch={arch}",
            "model.depth=8",
            "protocol=cifar_quick",
            "protocol.batch_size=32",
            "protocol.iterations=8",
            "protocol.log_every=2",
            "protocol.eval_every=4",
            "protocol.schedule.warmup_iterations=2",
            *paths(tmp_path),
            env={"RESDEG_CIFAR_ROOT": str(small_cifar)},
        )
    assert report_main(["all", "--results", str(tmp_path / "results")]) == 0
    resnet = json.loads(next((tmp_path / "results").rglob("resnet-8-A_*/summary.json")).read_text())
    assert resnet["evaluations"] == 2 and resnet["eval_seconds"] > 0  # what the test curve cost
    responses = pd.read_csv(next((tmp_path / "results").rglob("resnet-8-A_*/layer_responses.csv")))
    assert responses.layer.tolist() == list(range(1, 8)) and (responses["std"] > 0).all()  # Fig. 7, 7 3x3 layers
    assert (tmp_path / "results" / "figures" / "fig7_cifar10_quick-8.png").is_file()
    table = pd.read_csv(tmp_path / "results" / "tables" / "table6_cifar10_quick-8.csv")  # quick-<iterations>
    assert table["method"].tolist()[0] == "ResNet-8" and table["runs"].tolist() == [1, 0, 0, 0, 0, 0, 0]
    # the number, then a note such as "(did not train)" where 8 iterations left the net at chance
    ours = str(table["test error % (ours)"][0]).split()[0]
    assert float(ours) == pytest.approx(resnet["final"]["test_error"], abs=0.005)
    assert pd.isna(table["paper, 64k iterations (reference only)"][0])  # the paper has no 8-layer net
    verdict = (tmp_path / "results" / "tables" / "degradation_verdict_quick-8.md").read_text()
    assert "fewer than two depths complete (8)" in verdict and "Missing from the sweep: plain-20" in verdict
    from resdeg.report.figures import fig6

    fig = fig6(load_results(tmp_path / "results").of("cifar10", "quick-8"), "quick-8")
    assert [len(ax.lines) for ax in fig.axes] == [2, 2]  # training (4 points) and test (2 points) per panel


def test_the_dev_install_opens_and_exports_the_committed_notebook(tmp_path):
    """`make setup` (the dev extra) installs what the README's notebook command needs."""
    import sys

    jupyter = Path(sys.executable).with_name("jupyter")
    assert jupyter.is_file() and Path(sys.executable).with_name("jupyter-lab").is_file()
    done = subprocess.run(
        [
            str(jupyter),
            "nbconvert",
            "--to",
            "html",
            "--output-dir",
            str(tmp_path),
            str(REPO / "notebooks" / "explore_results.ipynb"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "explore_results.html").stat().st_size > 10_000
