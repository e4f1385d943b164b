"""The report stage on small results/ trees written through the project's own recorder."""

import subprocess
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO
from fake_records import write_run
from resdeg.report.__main__ import main as report_main
from resdeg.report.load import load_results
from resdeg.report.tables import table6
from resdeg.report.verdict import degradation_verdict
from resdeg.training.recorder import RunRecorder


def test_table6_numbers_come_from_the_records(degraded):
    write_run(degraded, "residual", 56, 41, 40, seed=1)
    write_run(degraded, "residual", 110, 30, 20, seed=0)
    write_run(degraded, "residual", 110, 30, 22, seed=1)
    table = table6(load_results(degraded), "paper").set_index("method")
    row = table.loc["ResNet-56"]
    assert row["runs"] == 2
    assert row["test error % (ours)"] == "39.50±0.71"  # the mean over seeds
    assert row["test error % (paper)"] == 6.97
    assert row["difference (pts)"] == pytest.approx(39.5 - 6.97)
    # only ResNet-110 is written as the paper writes it: best (mean±std), the difference from the best
    assert table.loc["ResNet-110", "test error % (ours)"] == "20.00 (21.00±1.41)"
    assert table.loc["ResNet-110", "difference (pts)"] == pytest.approx(20.0 - 6.43)
    # every depth of the paper's Table 6 is a row; one not trained yet says so, with the paper's parameters
    assert table.index.tolist() == ["ResNet-20", "ResNet-32", "ResNet-44", "ResNet-56", "ResNet-110", "ResNet-1202"]
    assert table.loc["ResNet-1202", "runs"] == 0 and table.loc["ResNet-1202", "# params (M)"] == 19.4
    assert pd.isna(table.loc["ResNet-1202", "test error % (ours)"]) and pd.isna(
        table.loc["ResNet-1202", "difference (pts)"]
    )


def test_table6_of_a_short_protocol_gives_no_difference_to_the_paper(degraded):
    table = table6(load_results(degraded), "quick-500")
    assert "difference (pts)" not in table and "test error % (paper)" not in table
    assert table["paper, 64k iterations (reference only)"].tolist() == [8.75, 7.51, 7.17, 6.97, 6.43, 7.93]
    # how the error changes with depth: 43 -> 41 -> 40 -> 39 (final train error minus 2)
    assert table["vs. next shallower (pts)"].tolist()[1:4] == [-2.0, -1.0, -1.0]
    assert pd.isna(table["vs. next shallower (pts)"].iloc[0])


def test_verdict_with_one_seed_says_the_noise_is_unknown(degraded):
    text = degradation_verdict(load_results(degraded), "quick")
    assert "one seed per net, so the seed noise is unknown" in text
    # ResNet-56 4 points below ResNet-20, but with one seed that cannot be told from noise
    assert "Degradation reproduced, both halves" not in text
    assert "the residual half only in the weak sense" in text and "with one seed the seed noise is unknown" in text


def test_verdict_names_the_net_that_has_one_seed_when_the_other_has_several(degraded):
    """The CPU study's case: plain-20 with two seeds, plain-56 with one."""
    write_run(degraded, "plain", 20, 60, 55, seed=1)
    text = degradation_verdict(load_results(degraded), "quick")
    assert "plain-56 has one seed, so the seed noise of this gap is unknown" in text
    assert "one seed per net" in text  # the ResNets: one seed each


def test_verdict_with_seeds_weighs_each_gap_against_their_spread(tmp_path):
    # plain: 20 -> 57/59, 56 -> 78/80 (gap 21, spread 2); ResNet: 20 -> 45/47, 56 -> 46/47.5 (gap +0.75, spread 2)
    for seed, shift in ((0, 0.0), (1, 2.0)):
        write_run(tmp_path, "plain", 20, 57 + shift, 55, seed=seed)
        write_run(tmp_path, "plain", 56, 78 + shift, 76, seed=seed)
        write_run(tmp_path, "residual", 20, 45 + shift, 44, seed=seed)
        write_run(tmp_path, "residual", 56, 46 + 1.5 * shift / 2, 45, seed=seed)
    text = degradation_verdict(load_results(tmp_path), "quick")
    assert "plain-56 is 21.0 points above plain-20" in text
    assert "the gap exceeds the spread across seeds (2.0 points)" in text
    assert "ResNet-56 is 0.8 points above ResNet-20" in text  # 46.75 - 46.0
    assert "the gap is within the spread across seeds (2.0 points)" in text
    assert "plain-20: 58.0% (seeds 57.0-59.0, n=2)" in text
    # a deeper ResNet above a shallower one by less than the seed spread is "not worse", not "better"
    assert "Degradation reproduced, both halves" not in text
    assert (
        "the residual half only in the weak sense: no deeper ResNet is worse beyond the seed spread, but the "
        "deepest is not better beyond it (+0.8 points against the shallowest, within the spread across seeds "
        "(2.0 points))"
    ) in text
    assert "seed noise of those comparisons is unknown" not in text


def test_both_halves_only_when_the_deeper_resnet_is_better_beyond_the_spread(tmp_path):
    # ResNet: 20 -> 45/46, 56 -> 41/41.5 (gap -4.25, spread 1.0): the paper's residual half
    for seed, shift in ((0, 0.0), (1, 1.0)):
        write_run(tmp_path, "plain", 20, 57 + shift, 55, seed=seed)
        write_run(tmp_path, "plain", 56, 78 + shift, 76, seed=seed)
        write_run(tmp_path, "residual", 20, 45 + shift, 44, seed=seed)
        write_run(tmp_path, "residual", 56, 41 + shift / 2, 40, seed=seed)
    text = degradation_verdict(load_results(tmp_path), "quick")
    assert (
        "Degradation reproduced, both halves: the deeper plain net has higher training error (+21.0 points), and "
        "the deeper ResNet trains better, 4.2 points below the shallowest, beyond the spread across seeds "
        "(1.0 points)."
    ) in text
    assert "weak sense" not in text


def test_verdict_when_a_deeper_resnet_is_above_beyond_the_spread(tmp_path):
    for seed, shift in ((0, 0.0), (1, 0.5)):
        write_run(tmp_path, "plain", 20, 57 + shift, 55, seed=seed)
        write_run(tmp_path, "plain", 56, 78 + shift, 76, seed=seed)
        write_run(tmp_path, "residual", 20, 45 + shift, 44, seed=seed)
        write_run(tmp_path, "residual", 56, 48 + shift, 45, seed=seed)
    text = degradation_verdict(load_results(tmp_path), "quick")
    assert "do not remove it" in text and "ResNet-56 +3.0 vs ResNet-20" in text


def test_verdict_compares_matched_depths_and_reports_deeper_resnets_beside_it(degraded):
    """Degradation compares plain and residual nets of the same depths; a ResNet-110 with no
    plain-110 in the set (a short run where it still lags) is said on its own line, outside it."""
    write_run(degraded, "residual", 110, 52, 50)
    text = degradation_verdict(load_results(degraded), "quick")
    assert "ResNet-56 is 4.0 points below ResNet-20" in text and "the residual half only in the weak sense" in text
    assert "ResNet-110: 52.0%, 11.0 points above ResNet-56; one seed per net" in text
    write_run(degraded, "plain", 110, 85, 84)  # with a plain-110 it is a matched depth, inside the verdict
    text = degradation_verdict(load_results(degraded), "quick")
    assert (
        "do not remove it" in text
        and "ResNet-110 +11.0 vs ResNet-56" in text
        and "deeper than the plain nets" not in text
    )


def test_a_debug_run_and_a_killed_run_leave_the_sweep_report_unchanged(degraded, capsys):
    """A 30-iteration debug run under the same protocol name (another setting) and a killed
    run of the sweep's own setting change none of the sweep's figures, tables or verdict."""
    assert report_main(["all", "--results", str(degraded)]) == 0
    before = {p.name: p.read_bytes() for p in (degraded / "tables").iterdir()}
    write_run(degraded, "plain", 20, 85, 85, iterations=30, setting="debug")
    write_run(degraded, "plain", 56, 10, 10, seed=3, status="running")  # killed mid-run
    assert report_main(["all", "--results", str(degraded)]) == 0
    after = {p.name: p.read_bytes() for p in (degraded / "tables").iterdir()}
    for name, text in before.items():
        assert after[name] == text, name
    # the killed run is named, never silently dropped
    assert "left out, not complete: plain-56_seed3" in capsys.readouterr().err
    # the debug run gets a set of its own, named by its setting
    assert (
        "fewer than two depths complete (20)"
        in (degraded / "tables" / "degradation_verdict_quick_debug.md").read_text()
    )
    assert (degraded / "figures" / "fig6_cifar10_quick_debug.png").is_file()


def test_fig7_draws_recorded_layer_responses_and_names_the_nets_without(degraded):
    from resdeg.report.figures import fig7

    for name, scale in (("plain-20_seed0_s1", 1.0), ("resnet-20-A_seed0_s1", 0.5), ("resnet-56-A_seed0_s1", 0.25)):
        folder = next(degraded.glob(f"runs/*/{name}"))
        rec = RunRecorder(folder, {}, "")
        layers = 19 if "-20" in name else 55
        rec.write_layer_responses(
            [{"layer": k, "name": f"l{k}", "std": scale * (1 + k % 3)} for k in range(1, layers + 1)]
        )
    results = load_results(degraded)
    assert len(results.responses) == 19 + 19 + 55
    fig = fig7(results, "quick")
    top, bottom = fig.axes
    lines = {line.get_label(): line for line in top.lines}
    assert set(lines) == {"plain-20", "ResNet-20", "ResNet-56"}  # Fig. 7's depths; plain-56 has none recorded
    assert list(lines["ResNet-56"].get_ydata()[:3]) == [0.5, 0.75, 0.25]  # network order: 0.25 x (1 + k % 3)
    sorted_line = {line.get_label(): line for line in bottom.lines}["ResNet-56"].get_ydata()
    assert list(sorted_line) == sorted(sorted_line, reverse=True)
    assert "no layer responses recorded for plain-56" in fig._suptitle.get_text()
    assert report_main(["figures", "--results", str(degraded)]) == 0
    assert (degraded / "figures" / "fig7_cifar10_quick.png").is_file()


def test_budget_study_table_and_figure(tmp_path):
    from resdeg.report.budget import (
        budget_figure,
        budget_finding,
        budget_runs,
        budget_table,
        resnet_crossover,
        seed_gaps,
    )

    # plain gap 20 at every budget; ResNet gap +3 at 500, -1 and -2 (two seeds) at 1000
    for budget, resnet56 in ((500, [48.0]), (1000, [44.0, 43.0])):
        for seed, r56 in enumerate(resnet56):
            kw = dict(protocol=f"quick-{budget}", family="quick", iterations=budget, seed=seed, setting=f"b{budget}")
            write_run(tmp_path, "plain", 20, 50, 50, **kw)
            write_run(tmp_path, "plain", 56, 70, 70, **kw)
            write_run(tmp_path, "residual", 20, 45, 45, **kw)
            write_run(tmp_path, "residual", 56, r56, r56, **kw)
    write_run(
        tmp_path,
        "residual",
        56,
        10,
        10,
        protocol="quick-1000",
        family="quick",
        iterations=1000,
        seed=5,
        setting="b1000",
        status="running",
    )  # not complete: left out
    table = budget_table(load_results(tmp_path)).set_index("iterations")
    assert table.loc[500, "plain gap (pts)"] == 20 and table.loc[500, "ResNet gap (pts)"] == 3
    assert table.loc[500, "both halves"] == "no" and pd.isna(table.loc[500, "ResNet gap range"])  # one seed
    assert table.loc[1000, "ResNet seeds"] == 2 and table.loc[1000, "ResNet gap (pts)"] == -1.5
    assert table.loc[1000, "ResNet gap range"] == "-2.0 to -1.0" and table.loc[1000, "both halves"] == "yes"
    # 1000: ResNet-56 1.5 below ResNet-20, beyond the spread of 1.0 (ResNet-56's seeds 44 and 43); 500: above
    assert table["residual half"].tolist() == ["worse", "better"]
    assert budget_finding(table.reset_index()) == (
        "ResNet-56 first trains better than ResNet-20 beyond the seed spread "
        "at 1000 iterations (ResNet gap -1.50 points, 2 seeds)."
    )
    # the mean ResNet gap goes from +3 at 500 to -1.5 at 1000: zero at 500 * 2^(3/4.5) on the log axis
    assert resnet_crossover(seed_gaps(budget_runs(load_results(tmp_path), "quick"))) == pytest.approx(
        500 * 2 ** (3 / 4.5)
    )
    fig = budget_figure(load_results(tmp_path))
    gap_axis = fig.axes[0]
    assert any(line.get_label().startswith("ResNet gap crosses 0 (~794 iterations)") for line in gap_axis.lines)
    plain_line, resnet_line = [
        line
        for line in gap_axis.lines
        if line.get_label().startswith(("plain", "ResNet")) and "crosses" not in line.get_label()
    ]
    assert list(plain_line.get_xdata()) == [500, 1000] and list(resnet_line.get_ydata()) == [3.0, -1.5]
    assert report_main(["all", "--results", str(tmp_path)]) == 0
    assert (tmp_path / "figures" / "budget_cifar10_quick.png").is_file()
    assert "| 1000 |" in (tmp_path / "tables" / "budget_cifar10_quick.md").read_text().replace("  ", "")
    assert (
        (tmp_path / "tables" / "budget_cifar10_quick.md")
        .read_text()
        .rstrip()
        .endswith("(ResNet gap -1.50 points, 2 seeds).")
    )


def test_budget_finding_says_when_no_budget_shows_the_deeper_resnet_better(tmp_path):
    from resdeg.report.budget import budget_finding, budget_table

    for budget, resnet56 in ((500, [48.0, 47.0]), (1000, [45.5, 44.0])):
        for seed, r56 in enumerate(resnet56):
            kw = dict(protocol=f"quick-{budget}", family="quick", iterations=budget, seed=seed, setting=f"b{budget}")
            write_run(tmp_path, "plain", 20, 50, 50, **kw)
            write_run(tmp_path, "plain", 56, 70, 70, **kw)
            write_run(tmp_path, "residual", 20, 45, 45, **kw)
            write_run(tmp_path, "residual", 56, r56, r56, **kw)
    table = budget_table(load_results(tmp_path))
    assert table["residual half"].tolist() == ["worse", "not worse"]  # +2.5 beyond the spread 1; -0.25 within 1.5
    assert budget_finding(table) == (
        "No budget trained shows ResNet-56 better than ResNet-20 beyond the seed spread "
        "(the largest, 1000 iterations: ResNet gap -0.25 points, residual half 'not worse')."
    )


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


def test_fig6_has_two_panels_and_a_line_per_depth_and_split(degraded):
    import matplotlib.pyplot as plt

    from resdeg.report.figures import fig6

    fig = fig6(load_results(degraded).of("cifar10", "quick"), "quick")
    assert len(fig.axes) == 2
    for ax in fig.axes:
        assert len(ax.lines) == 8  # 4 depths x (dashed training, bold test)
        assert ax.get_xlabel() == "iterations" and ax.get_ylabel() == "error (%)"  # a short run: not in 1e4
        assert {line.get_linestyle() for line in ax.lines} == {"--", "-"}
    plt.close(fig)


def test_fig6_as_the_paper_draws_it_three_panels_with_resnet110_and_1202(tmp_path):
    """ResNet-110, trained with its warm-up protocol (family paper, the paper protocol's setting),
    is drawn beside ResNet-20 to 56, and against ResNet-1202 in a third panel; Table 6 has every row."""
    import matplotlib.pyplot as plt

    from resdeg.report.figures import fig6
    from resdeg.report.sets import report_sets

    for arch in ("plain", "residual"):
        for depth in (20, 32, 44, 56):
            write_run(
                tmp_path, arch, depth, 10 if arch == "residual" else 5 + depth / 4, 9, protocol="paper", iterations=2000
            )
    for seed in (0, 1):
        write_run(
            tmp_path, "residual", 110, 4, 8 + seed, seed=seed, protocol="paper_warmup", family="paper", iterations=2000
        )
    write_run(tmp_path, "residual", 1202, 3, 9, protocol="paper", iterations=2000)
    sets = report_sets(load_results(tmp_path), "cifar10")
    assert [(s.label, len(s.results.runs)) for s in sets] == [("paper", 11)]  # one figure, one protocol family
    fig = fig6(sets[0].results, "paper")
    assert [ax.get_title() for ax in fig.axes] == [
        "plain nets on CIFAR-10",
        "ResNets on CIFAR-10",
        "ResNet-110 vs ResNet-1202 on CIFAR-10",
    ]
    assert [len(ax.lines) for ax in fig.axes] == [8, 10, 4]  # (training, test) per depth
    assert [t.get_text() for t in fig.axes[2].get_legend().get_texts()] == ["ResNet-110", "ResNet-1202"]
    assert not fig.axes[2].texts
    plt.close(fig)
    # without ResNet-1202 (a CPU set) the third panel says so, never silently half-empty
    (one,) = [s for s in report_sets(load_results(tmp_path), "cifar10")]
    fig = fig6(one.results.where(one.results.runs.depth != 1202), "paper")
    assert [t.get_text() for t in fig.axes[2].texts] == ["no complete run in this set: ResNet-1202"]
    plt.close(fig)
    table = table6(sets[0].results, "paper").set_index("method")
    assert (
        table.loc["ResNet-110", "test error % (ours)"] == "8.00 (8.50±0.71)" and table.loc["ResNet-1202", "runs"] == 1
    )


def test_notebook_runs_on_a_results_tree_and_is_written_back_with_its_outputs(degraded, tmp_path):
    import shutil

    import nbformat

    from resdeg.report.notebook import NOTEBOOK, execute_in_place

    write_imagenet_run(degraded, "plain", 18, "A", 28.0, 10.0, 27.0)  # a second dataset: its own figure
    write_imagenet_run(degraded, "plain", 34, "A", 29.0, 10.5, 29.5)
    copy = tmp_path / "notebooks" / NOTEBOOK.name  # the committed one stays as it is
    copy.parent.mkdir()
    shutil.copy(NOTEBOOK, copy)
    assert execute_in_place(degraded, copy) == copy
    nb = nbformat.read(copy, as_version=4)
    outputs = "".join(o.get("text", "") for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs)
    assert "Degradation reproduced" in outputs and "Degradation verdict (ImageNet, protocol 'paper')" in outputs
    images = [o for cell in nb.cells for o in cell.get("outputs", []) if "image/png" in o.get("data", {})]
    assert len(images) == 2  # Fig. 6 and Fig. 4
    written = copy.read_text()
    assert execute_in_place(degraded, copy).read_text() == written  # same results, same file: nothing to commit


# -- ImageNet: Fig. 4, Tables 2 and 3 ------------------------------------------------------------
def write_imagenet_run(results, arch, depth, shortcut, top1, top5, train_final, seed=0, protocol="paper"):
    name = f"plain-{depth}" if arch == "plain" else f"resnet-{depth}-{shortcut}"
    identity = {
        "run_id": f"{name}_seed{seed}_test",
        "name": name,
        "group": f"imagenet-{protocol}",
        "dataset": "imagenet",
        "arch": arch,
        "depth": depth,
        "shortcut": shortcut,
        "protocol": protocol,
        "protocol_family": protocol,
        "protocol_hash": "s1",
        "seed": seed,
    }
    rec = RunRecorder(results / "runs" / identity["group"] / identity["run_id"], identity, "seed: 0\n")
    rec.start(parameters=1000 * depth, iterations=600000)
    for it in range(10000, 600001, 10000):
        rec.log_metrics({"train/error": 90 - (90 - train_final) * it / 600000}, step=it)
        if it % 50000 == 0:
            rec.log_metrics({"val/error": 90 - (90 - top1 - 3) * it / 600000}, step=it)
    rec.log_metrics({"val_10crop/error": top1, "val_10crop/top5_error": top5}, step=600000)
    rec.finish("complete", final={"train_error": train_final, "val_10crop_error": top1, "val_10crop_top5_error": top5})


@pytest.fixture
def imagenet(tmp_path):
    write_imagenet_run(tmp_path, "plain", 18, "A", 28.0, 10.0, 27.0)
    write_imagenet_run(tmp_path, "plain", 34, "A", 29.0, 10.5, 29.5)
    write_imagenet_run(tmp_path, "residual", 18, "A", 27.5, 9.5, 26.0)
    write_imagenet_run(tmp_path, "residual", 34, "A", 25.5, 8.0, 22.0)
    write_imagenet_run(tmp_path, "residual", 34, "A", 25.1, 7.9, 22.0, seed=1)
    write_imagenet_run(tmp_path, "residual", 34, "B", 24.6, 7.5, 21.0)
    return tmp_path


def test_table2_and_table3_numbers_come_from_the_records(imagenet):
    from resdeg.report.tables import table2, table3

    results = load_results(imagenet)
    t2 = table2(results).set_index("method")
    assert list(t2.index) == ["plain-18", "plain-34", "ResNet-18", "ResNet-34"]
    assert t2.loc["plain-34", "top-1 err % (ours)"] == "29.00" and t2.loc["plain-34", "top-1 err % (paper)"] == 28.54
    assert t2.loc["ResNet-34", "top-1 err % (ours)"] == "25.30±0.28" and t2.loc["ResNet-34", "runs"] == 2
    assert t2.loc["ResNet-34", "difference (pts)"] == pytest.approx(25.30 - 25.03)
    t3 = table3(results).set_index("model")
    assert list(t3.index) == ["plain-34", "ResNet-34 A", "ResNet-34 B"]  # no option C run: no row
    assert (
        t3.loc["ResNet-34 B", "top-5 err % (ours)"] == "7.50" and t3.loc["ResNet-34 B", "top-5 err % (paper)"] == 7.46
    )
    assert t3.loc["ResNet-34 B", "top-1 difference (pts)"] == pytest.approx(24.6 - 24.52)


def test_fig4_has_thin_training_and_bold_validation_lines(imagenet):
    import matplotlib.pyplot as plt

    from resdeg.report.figures import fig4

    fig = fig4(load_results(imagenet).of("imagenet", "paper"), "paper")
    plain, resnet = fig.axes
    assert len(plain.lines) == 4 and len(resnet.lines) == 4  # 2 depths x (thin training, bold validation)
    assert sorted(line.get_linewidth() for line in plain.lines) == [0.8, 0.8, 2.4, 2.4]
    assert plain.get_xlim() == (0, 50) and plain.get_ylim() == (20, 60)  # the paper's axes for protocol paper
    plt.close(fig)


def test_cli_writes_imagenet_figures_tables_and_verdict(imagenet):
    assert report_main(["all", "--results", str(imagenet)]) == 0
    assert (imagenet / "figures" / "fig4_imagenet_paper.png").is_file()
    assert (imagenet / "figures" / "fig4_imagenet_paper.pdf").is_file()
    for stem in ("table2_imagenet_paper", "table3_imagenet_paper"):
        assert {p.suffix for p in (imagenet / "tables").glob(f"{stem}.*")} == {".md", ".tex", ".csv"}
    verdict = (imagenet / "tables" / "degradation_verdict_imagenet_paper.md").read_text()
    assert "plain-34 is 2.5 points above plain-18" in verdict and "ResNet-34 is 4.0 points below ResNet-18" in verdict
    assert "Degradation reproduced" in verdict


def test_report_reads_resdeg_results_and_says_which_folder(degraded, monkeypatch, capsys):
    monkeypatch.setenv("RESDEG_RESULTS", str(degraded))
    monkeypatch.chdir(degraded.parent)  # ./results does not exist here
    assert report_main(["tables"]) == 0
    assert f"reading {degraded}" in capsys.readouterr().err
    assert (degraded / "tables" / "degradation_verdict_quick.md").is_file()


def test_the_report_logs_its_figures_and_tables_to_one_wandb_run(degraded, monkeypatch):
    from resdeg.tracking.wandb_files import offline_runs

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("RESDEG_EXPERIMENTS", str(degraded / "experiments"))
    assert report_main(["all", "--results", str(degraded), "--wandb"]) == 0
    (run,) = offline_runs(degraded / "experiments" / "wandb", wait_s=60)
    assert run.name == "report" and run.job_type == "report"
    logged = {key: value for row in run.history for key, value in row.items()}  # W&B nests a media value's fields
    assert logged["figures/fig6_cifar10_quick/_type"] == logged["figures/fig1_cifar10_quick/_type"] == "image-file"
    assert (
        logged["tables/table6_cifar10_quick/_type"] == "table-file" and logged["tables/table6_cifar10_quick/nrows"] == 6
    )


def test_a_run_killed_before_its_first_row_leaves_the_seed_bands_drawn(tmp_path):
    """A record with an empty history (killed at iteration 0) beside two seeds of each net:
    the report draws the seeds' bands and leaves the killed run out, naming it."""
    for seed in (0, 1):
        for arch in ("plain", "residual"):
            for depth in (20, 56):
                write_run(tmp_path, arch, depth, 40 + depth / 4 + seed, 40, seed=seed)
    killed = {
        "run_id": "plain-20_seed2_s1",
        "name": "plain-20",
        "group": "cifar10-quick",
        "dataset": "cifar10",
        "arch": "plain",
        "depth": 20,
        "shortcut": None,
        "protocol": "quick",
        "seed": 2,
        "protocol_hash": "s1",
    }
    rec = RunRecorder(tmp_path / "runs" / "cifar10-quick" / killed["run_id"], killed, "seed: 2\n")
    rec.start(iterations=500)  # killed before it logged a row: history.csv holds its header only
    rec.finish("interrupted", interrupted_at=0)
    assert report_main(["all", "--results", str(tmp_path)]) == 0
    assert (tmp_path / "figures" / "fig6_cifar10_quick.png").is_file()
    assert "Drawn from 8 complete runs" in (tmp_path / "tables" / "degradation_verdict_quick.md").read_text()


def _latex_problems(tex: str) -> list[str]:
    """What a LaTeX run would stumble on in a table: a parse error (an unbalanced brace or an
    environment left open, e.g. by a "%" that comments out the rest of a line), a comment, or
    a macro-parameter "#" outside a macro definition."""
    from pylatexenc.latexwalker import LatexCharsNode, LatexCommentNode, LatexWalker, LatexWalkerParseError

    try:
        nodes, _, _ = LatexWalker(tex, tolerant_parsing=False).get_latex_nodes()
    except LatexWalkerParseError as exc:
        return [f"parse error: {str(exc).splitlines()[0]}"]
    problems, stack = [], list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, LatexCommentNode):
            problems.append(f"comment {node.comment!r}")
        if isinstance(node, LatexCharsNode) and "#" in node.chars.replace("\\#", ""):
            problems.append(f"unescaped # in {node.chars!r}")
        stack += [n for n in (getattr(node, "nodelist", None) or []) if n is not None]
        stack += [
            n
            for arg in (getattr(getattr(node, "nodeargd", None), "argnlist", None) or [])
            if arg is not None
            for n in ([arg] if not hasattr(arg, "nodelist") else [arg])
        ]
    return problems


def test_the_tex_tables_parse_as_latex(degraded):
    assert report_main(["tables", "--results", str(degraded)]) == 0
    tables = sorted((degraded / "tables").glob("*.tex"))
    assert tables
    for path in tables:
        assert _latex_problems(path.read_text()) == [], path.name
    # the check fails where LaTeX would: a "%" left unescaped comments out the end of the table
    table6 = (degraded / "tables" / "table6_cifar10_quick.tex").read_text()
    assert _latex_problems(table6.replace("\\%", "%")) and _latex_problems(table6.replace("\\#", "#"))


def _write_signals(results, name: str, first_to_last: float, std: float = 1.0, iterations=(0, 50, 100, 250, 500)):
    """signals.csv through the recorder: the gradient norm falls geometrically from the last 3x3
    layer (1.0) to the first (``first_to_last``)."""
    rec = RunRecorder(next(results.glob(f"runs/*/{name}")), {}, "")
    layers = 19 if "-20" in name else 55
    for it in iterations:
        ratio = first_to_last.get(it, 1.0) if isinstance(first_to_last, dict) else first_to_last
        rec.write_signals(
            it,
            [
                {
                    "layer": k,
                    "name": f"l{k}",
                    "forward_std": std,
                    "weight_grad_norm": 0.1,
                    "output_grad_norm": ratio ** ((layers - k) / (layers - 1)),
                }
                for k in range(1, layers + 1)
            ],
        )


def test_signals_figure_and_verdict_line_agree_with_the_paper_when_nothing_vanishes(degraded):
    from resdeg.report.signals import signals_figure

    for name in ("plain-20_seed0_s1", "plain-56_seed0_s1", "resnet-20-A_seed0_s1", "resnet-56-A_seed0_s1"):
        _write_signals(degraded, name, 0.5)
    results = load_results(degraded)
    assert len(results.signals) == 5 * (19 + 55) * 2
    fig = signals_figure(results, "quick")
    titles = [ax.get_title() for ax in fig.axes[:4]]
    assert titles == ["iteration 0", "iteration 50", "iteration 250", "iteration 500"]  # 0, early, middle, end
    gradients = {line.get_label(): line for line in fig.axes[3].lines}
    assert set(gradients) == {"plain-20", "plain-56", "ResNet-20", "ResNet-56"}
    assert gradients["plain-56"].get_linestyle() == "--" and gradients["ResNet-56"].get_linestyle() == "-"
    assert gradients["plain-56"].get_ydata()[0] == pytest.approx(0.5) and fig.axes[3].get_yscale() == "log"
    text = degradation_verdict(results, "quick")
    assert "plain-56 0.5 at its end (0.5 to 0.5 over training), smallest response std 1" in text
    assert "no net's gradients vanish" in text and "every response keeps a non-zero variance: as the paper says" in text
    import json

    summary_file = next(degraded.glob("runs/*/plain-20_seed0_s1/summary.json"))
    summary = json.loads(summary_file.read_text())
    summary.update(eval_seconds=20.0, evaluations=10, signals_seconds=0.5, signal_measurements=5)
    summary_file.write_text(json.dumps(summary))
    assert report_main(["all", "--results", str(degraded)]) == 0
    assert (degraded / "figures" / "signals_cifar10_quick.png").is_file()
    assert "Signals (Section 4.1" in (degraded / "tables" / "degradation_verdict_quick.md").read_text()
    report = (degraded / "REPORT.md").read_text()  # every number in one page, from the records
    assert (
        "## Verdicts" in report and "Signals (Section 4.1" in report and "figures/signals_cifar10_quick.png" in report
    )
    assert "No record has a measured training speed yet" in report  # records written without a pace
    import re

    assert "What Section 4.1's signals cost" in report
    assert re.search(r"\| quick +\| plain-20 +\| +2 \| +0\.1 \| +5 \|", report)  # 20 s / 10, 0.5 s / 5: 5%
    # the committed PDFs journals take: TrueType fonts, no Type 3
    for pdf in (degraded / "figures").glob("*.pdf"):
        assert b"/Type3" not in pdf.read_bytes(), pdf.name


def test_the_signals_verdict_says_when_the_data_contradicts_the_paper(degraded):
    _write_signals(degraded, "plain-20_seed0_s1", 0.5)
    _write_signals(degraded, "plain-56_seed0_s1", 1e-4, std=1e-5)
    text = degradation_verdict(load_results(degraded), "quick")
    assert "the gradients of plain-56 vanish (first-to-last ratio below 0.01), which contradicts the paper" in text
    assert "the forward signals of plain-56 vanish (a response std below 0.001)" in text
    assert "not as the paper says" in text
    assert "exploding" not in text


def test_the_signals_verdict_names_gradients_that_explode_towards_the_input(degraded):
    """Deep plain nets with BN start with gradients that grow towards the input (mean-field
    theory of BN): not vanishing, but not "healthy norms" either; the line says so, with when."""
    _write_signals(degraded, "plain-20_seed0_s1", 0.5)
    _write_signals(degraded, "plain-56_seed0_s1", {0: 2e4, 50: 2.0, 100: 2.0, 250: 2.0, 500: 2.0})
    text = degradation_verdict(load_results(degraded), "quick")
    assert "no net's gradients vanish" in text
    assert (
        "The gradients do grow more than 100-fold from the last 3x3 layer to the first in plain-56 (up to 2e+04, "
        "at iteration 0): exploding rather than vanishing"
    ) in text


def test_records_without_signals_give_no_signals_line_or_figure(degraded):
    assert "Signals (Section 4.1" not in degradation_verdict(load_results(degraded), "quick")
    assert report_main(["figures", "--results", str(degraded)]) == 0
    assert not list(degraded.glob("figures/signals_*"))


@pytest.mark.parametrize(
    "summary,says",
    [
        (
            {"schema": 2, "run_id": "x", "status": "complete"},
            "cannot be drawn: it has no name, dataset, arch, depth, protocol, protocol_family, protocol_hash, seed",
        ),
        (
            {
                "schema": 2,
                "run_id": "plain-20_seed0_s1",
                "name": "plain-20",
                "dataset": "cifar10",
                "arch": "plain",
                "depth": "20",
                "protocol": "quick",
                "protocol_family": "quick",
                "protocol_hash": "s1",
                "seed": 0,
                "status": "complete",
                "final": {"train_error": "57"},
            },
            "cannot be drawn: depth='20', final.train_error='57' are not numbers",
        ),
        (
            {"run_id": "x", "status": "complete"},  # no schema version
            "cannot be read (ValueError: its schema version is None, this resdeg reads version 2: train it again)",
        ),
    ],
)
def test_a_malformed_record_is_named_and_skipped_never_raised_on(degraded, summary, says):
    import json

    folder = next(degraded.glob("runs/*/plain-20_seed0_s1"))
    (folder / "summary.json").write_text(json.dumps(summary))
    results = load_results(degraded)
    assert len(results.runs) == 7 and "plain-20" not in set(results.runs.name)
    (problem,) = results.problems
    assert folder.name in problem and f"skipped, the record {says}" in problem
    assert report_main(["all", "--results", str(degraded)]) == 0


def _compile_in_article(pdflatex: str, table: Path, folder: Path) -> str:
    """The table \\input into a plain article with booktabs and tabularx; pdflatex's log."""
    document = folder / f"{table.stem}_doc.tex"
    document.write_text(
        "\\documentclass{article}\n\\usepackage{booktabs,tabularx,array}\n\\begin{document}\n"
        f"\\input{{{table}}}\n\\end{{document}}\n"
    )
    done = subprocess.run(
        [pdflatex, "-interaction=nonstopmode", "-halt-on-error", document.name],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    return (folder / f"{table.stem}_doc.log").read_text(errors="replace")


def test_every_tex_table_compiles_within_the_text_width_of_an_article(degraded, pdflatex):
    """Camera-ready: each table (the fixture's, and every committed one) compiles in `article`
    with booktabs and fits \\textwidth (no overfull box); captions say "Table 6" once."""
    for depth in (20, 56):  # a budget study: its table has the most columns
        for arch, error in (("plain", 50), ("residual", 40)):
            write_run(
                degraded, arch, depth, error + depth / 10, error, protocol="quick-2000", family="quick", iterations=2000
            )
    assert report_main(["tables", "--results", str(degraded)]) == 0
    tables = sorted((degraded / "tables").glob("*.tex")) + sorted((REPO / "results" / "tables").glob("*.tex"))
    assert any(p.name.startswith("budget_") for p in tables) and any(p.name.startswith("table6_") for p in tables)
    (degraded / "latex").mkdir()
    for table in tables:
        log = _compile_in_article(pdflatex, table, degraded / "latex")
        assert "Overfull \\hbox" not in log, f"{table}: wider than the page"
        text = table.read_text()
        assert "Table 6: " not in text and ">" not in text.replace(">{\\raggedleft", "")
    table6 = (degraded / "tables" / "table6_cifar10_quick.tex").read_text()
    assert "(the paper's Table 6)" in table6


def test_a_net_that_ended_at_chance_is_marked_did_not_train_never_counted_as_a_depth_result(degraded):
    """ResNet-1202 at 89.7% training error under a short protocol never left chance: tables,
    figure legend and verdict say "did not train" rather than "+48 points vs. ResNet-110"."""
    import matplotlib.pyplot as plt

    from resdeg.report.figures import fig6
    from resdeg.report.sets import report_sets

    write_run(degraded, "residual", 110, 38, 40)
    write_run(degraded, "residual", 1202, 89.7, 89.69)
    (s,) = report_sets(load_results(degraded), "cifar10")
    table = table6(s.results, "quick").set_index("method")
    assert table.loc["ResNet-1202", "test error % (ours)"] == "89.69 (did not train)"
    assert pd.isna(table.loc["ResNet-1202", "vs. next shallower (pts)"])
    assert table.loc["ResNet-110", "vs. next shallower (pts)"] == pytest.approx(40 - 39)
    fig = fig6(s.results, "quick", s.description)
    assert "ResNet-1202 (did not train)" in [t.get_text() for t in fig.axes[2].get_legend().get_texts()]
    assert "setting" not in fig._suptitle.get_text()  # the set is named without its hash
    plt.close(fig)
    verdict = degradation_verdict(s.results, "quick")
    assert "ResNet-1202: did not train (89.7%, at chance)" in verdict and "ResNet-110: 38.0%" in verdict
