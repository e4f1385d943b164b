"""The report stage on small results/ trees written through the project's own recorder."""

import numpy as np
import pandas as pd
import pytest

from resdeg.report.__main__ import main as report_main
from resdeg.report.load import load_results
from resdeg.report.tables import table6
from resdeg.report.verdict import degradation_verdict
from resdeg.training.recorder import RunRecorder


def write_run(results, arch, depth, final_train, final_test, seed=0, protocol="quick", status="complete", iterations=500):
    name = f"plain-{depth}" if arch == "plain" else f"resnet-{depth}-A"
    identity = {"run_id": f"{name}_seed{seed}_test", "name": name, "group": f"cifar10-{protocol}", "dataset": "cifar10",
                "arch": arch, "depth": depth, "shortcut": "A", "protocol": protocol, "seed": seed}
    rec = RunRecorder(results / "runs" / identity["group"] / identity["run_id"], identity, "seed: 0\n")
    rec.start(parameters=1000 * depth, iterations=iterations)
    steps = np.arange(50, iterations + 1, 50)
    # errors fall from 90% towards the final value
    for it in steps:
        frac = it / iterations
        rec.log_metrics({"train/error": 90 - (90 - final_train) * frac}, step=int(it))
    for it in steps[::5].tolist() + [iterations]:
        rec.log_metrics({"test/error": 90 - (90 - final_test) * it / iterations}, step=int(it))
    if status == "complete":
        rec.finish("complete", final={"train_error": final_train, "test_error": final_test})
    return identity["run_id"]


@pytest.fixture
def degraded(tmp_path):
    for arch, finals in {"plain": {20: 57, 32: 62, 44: 70, 56: 78}, "residual": {20: 45, 32: 43, 44: 42, 56: 41}}.items():
        for depth, train_error in finals.items():
            write_run(tmp_path, arch, depth, train_error, train_error - 2)
    return tmp_path


def test_table6_numbers_come_from_the_records(degraded):
    write_run(degraded, "residual", 56, 41, 40, seed=1)
    table = table6(load_results(degraded))
    row = table.set_index("method").loc["ResNet-56"]
    assert row["runs"] == 2
    assert row["test error % (ours)"] == "39.00 (39.50±0.71)"  # best (mean±std), as the paper writes ResNet-110
    assert row["test error % (paper)"] == 6.97
    assert row["difference (pts)"] == pytest.approx(39.0 - 6.97)


def test_verdict_with_degradation(degraded):
    text = degradation_verdict(load_results(degraded), "quick")
    assert "plain-56 is 21.0 points above plain-20" in text
    assert "ResNet-56 is 4.0 points below ResNet-20" in text
    assert "Degradation reproduced" in text


def test_verdict_without_degradation(tmp_path):
    for depth, e in {20: 60, 56: 50}.items():
        write_run(tmp_path, "plain", depth, e, e)
        write_run(tmp_path, "residual", depth, e - 10, e - 10)
    text = degradation_verdict(load_results(tmp_path), "quick")
    assert "plain-56 is 10.0 points below plain-20" in text
    assert "No degradation" in text
    assert "Missing from the sweep: plain-32, plain-44, ResNet-32, ResNet-44" in text


def test_cli_draws_each_protocol_separately_and_skips_a_torn_record(degraded, capsys):
    write_run(degraded, "plain", 20, 10, 9, protocol="paper", iterations=64000)
    torn = degraded / "runs" / "cifar10-quick" / "plain-44_seed0_test" / "summary.json"
    torn.write_text(torn.read_text()[:40])  # cut by hand mid-file
    assert report_main(["all", "--results", str(degraded)]) == 0
    err = capsys.readouterr().err
    assert "plain-44_seed0_test: skipped, the record cannot be read" in err
    figures = {p.name for p in (degraded / "figures").iterdir()}
    assert {"fig6_cifar10_quick.png", "fig6_cifar10_quick.pdf", "fig1_cifar10_paper.png", "fig6_cifar10_paper.pdf"} <= figures
    assert "plain-44" in (degraded / "tables" / "degradation_verdict_quick.md").read_text()  # named as missing
    csv = pd.read_csv(degraded / "tables" / "table6_cifar10_quick.csv")
    assert csv["method"].tolist() == ["ResNet-20", "ResNet-32", "ResNet-44", "ResNet-56"]
    assert (degraded / "tables" / "table6_cifar10_quick.tex").read_text().startswith("\\begin{table}")


def test_fig6_has_two_panels_and_a_line_per_depth_and_split(degraded):
    import matplotlib.pyplot as plt

    from resdeg.report.figures import fig6

    fig = fig6(load_results(degraded).of("cifar10", "quick"), "quick")
    assert len(fig.axes) == 2
    for ax in fig.axes:
        assert len(ax.lines) == 8  # 4 depths x (dashed training, bold test)
        assert ax.get_xlabel() == "iter. (1e4)" and ax.get_ylabel() == "error (%)"
        assert {line.get_linestyle() for line in ax.lines} == {"--", "-"}
    plt.close(fig)


def test_notebook_runs_on_a_results_tree(degraded):
    import os

    import nbformat
    from nbclient import NotebookClient

    from conftest import REPO

    nb = nbformat.read(REPO / "notebooks" / "explore_results.ipynb", as_version=4)
    os.environ["RESDEG_RESULTS"] = str(degraded)
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
    finally:
        del os.environ["RESDEG_RESULTS"]
    outputs = "".join(o.get("text", "") for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs)
    assert "Degradation reproduced" in outputs
    assert any("image/png" in o.get("data", {}) for cell in nb.cells for o in cell.get("outputs", []))
