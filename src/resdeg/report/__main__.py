"""Regenerate figures, tables and the degradation verdict from results/ alone.

    python -m resdeg.report [figures|tables|all|notebook] [--results results] [--protocol quick-1000]
                            [--dataset cifar10]

One set per (dataset, protocol, setting), complete runs only (resdeg.report.sets): runs of
different protocols or settings are never mixed in a figure, table or verdict. A protocol
family trained at several budgets (quick-500, quick-1000...) also gets its budget study.
CIFAR-10: Fig. 6, Fig. 1, Fig. 7, Section 4.1's signals, Table 6, the verdict. ImageNet: Fig. 4, Table 2, Table 3, the
verdict. Output goes to results/figures/ and results/tables/, named with the protocol; a
partial sweep is drawn as it is and the verdict names what is missing. ``all`` also writes
results/REPORT.md: every verdict and table, the measured speeds and benchmarks, in one file. ``notebook``
re-executes notebooks/explore_results.ipynb in place on the same results (resdeg.report.notebook).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

from resdeg.paths import results_root

matplotlib.use("Agg")  # the CLI writes files only; notebooks keep their inline backend

from resdeg.report.budget import BUDGET_LATEX_COLUMNS, budget_finding, budget_table, draw_budget, families_with_budgets  # noqa: E402
from resdeg.report.figures import draw_fig1, draw_fig4, draw_fig6, draw_fig7  # noqa: E402
from resdeg.report.load import load_results  # noqa: E402
from resdeg.report.sets import ReportSet, report_sets  # noqa: E402
from resdeg.report.signals import draw_signals  # noqa: E402
from resdeg.report.tables import is_paper_protocol, shortcuts_table, table2, table3, table6, write_table  # noqa: E402
from resdeg.report.verdict import degradation_verdict  # noqa: E402

DATASETS = ("cifar10", "imagenet")


def report_cifar10(s: ReportSet, what: str, figures: Path, tables: Path) -> list[Path]:
    subset, protocol, label = s.results, s.protocol, s.label
    written = []
    if what in ("figures", "all"):
        written += draw_fig6(subset, protocol, figures, f"fig6_cifar10_{label}", s.description)
        written += draw_fig1(subset, protocol, figures, f"fig1_cifar10_{label}", s.description)
        if len(subset.responses):  # records made before layer responses were recorded have none
            written += draw_fig7(subset, protocol, figures, f"fig7_cifar10_{label}", s.description)
        else:
            print(f"note (cifar10, {label}): no record has layer responses; Fig. 7 not drawn", file=sys.stderr)
        if len(subset.signals):  # records made before the signals were recorded have none
            written += draw_signals(subset, protocol, figures, f"signals_cifar10_{label}", s.description)
    if what in ("tables", "all"):
        reference = (
            ""
            if is_paper_protocol(protocol)
            else ("; not the paper's protocol, so the paper's 64k-iteration number is a reference, not a target")
        )
        written += write_table(
            table6(subset, protocol),
            tables,
            f"table6_cifar10_{label}",
            f"CIFAR-10 test error (%), ResNets with option A, protocol '{protocol}' "
            f"({s.description}){reference}; a row with 0 runs is a depth of the paper not trained in this set "
            "(its parameters are the paper's)",
            paper_table="Table 6",
        )
        if subset.runs.shortcut.isin(["B", "C"]).any():
            written += write_table(
                shortcuts_table(subset),
                tables,
                f"shortcuts_cifar10_{label}",
                f"Shortcut options A/B/C on CIFAR-10 (not in the paper), protocol '{protocol}'",
            )
    return written


def report_imagenet(s: ReportSet, what: str, figures: Path, tables: Path) -> list[Path]:
    subset, protocol, label = s.results, s.protocol, s.label
    written = []
    if what in ("figures", "all"):
        written += draw_fig4(subset, protocol, figures, f"fig4_imagenet_{label}", s.description)
    if what in ("tables", "all"):
        written += write_table(
            table2(subset),
            tables,
            f"table2_imagenet_{label}",
            f"ImageNet top-1 error (%, 10-crop testing), protocol '{protocol}'",
            paper_table="Table 2",
        )
        written += write_table(
            table3(subset),
            tables,
            f"table3_imagenet_{label}",
            f"ImageNet ResNet-34 top-1 / top-5 error (%, 10-crop testing), protocol '{protocol}'",
            paper_table="Table 3",
        )
    return written


def report_budgets(results, what: str, figures: Path, tables: Path) -> list[Path]:
    """The budget study of each CIFAR-10 protocol family trained at several budgets."""
    written = []
    for family in families_with_budgets(results):
        if what in ("figures", "all"):
            written += draw_budget(results, family, figures, f"budget_cifar10_{family}")
        if what in ("tables", "all"):
            table = budget_table(results, family)
            written += write_table(
                table,
                tables,
                f"budget_cifar10_{family}",
                f"Budget study, CIFAR-10, protocol family '{family}': final training error of "
                "20- and 56-layer nets and the gap (56 minus 20; > 0: the deeper net trains "
                "worse), mean over seeds; residual half: 'better' where ResNet-56 is below "
                "ResNet-20 beyond the seed spread, 'not worse' where within it",
                note=budget_finding(table),
                latex_columns=BUDGET_LATEX_COLUMNS,
            )
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="?", choices=("figures", "tables", "all", "notebook"), default="all")
    parser.add_argument(
        "--results",
        default=str(results_root()),
        help="the results folder (default: $RESDEG_RESULTS, else ./results)",
    )
    parser.add_argument("--protocol", help="only this protocol (default: each protocol found)")
    parser.add_argument("--dataset", choices=DATASETS, help="only this dataset (default: each dataset found)")
    parser.add_argument(
        "--wandb",
        action="store_true",
        help="also log the figures and tables to a W&B run named 'report' (online with credentials, "
        "else offline, as the training runs)",
    )
    args = parser.parse_args(argv)

    results_dir = Path(args.results)
    print(f"reading {results_dir.absolute()}", file=sys.stderr)
    if args.what == "notebook":
        from resdeg.report.notebook import execute_in_place

        print(f"wrote {execute_in_place(results_dir)} (executed on {results_dir})")
        return 0
    results = load_results(results_dir)
    for problem in results.problems:
        print(f"warning: {problem}", file=sys.stderr)
    datasets = [args.dataset] if args.dataset else [d for d in DATASETS if (results.runs.dataset == d).any()]
    if not datasets:
        print(f"no run records under {results_dir / 'runs'}: run `make sweep-degradation` first", file=sys.stderr)
        return 1
    written = []
    figures, tables = results_dir / "figures", results_dir / "tables"
    for dataset in datasets:
        sets = report_sets(results, dataset, args.protocol)
        if not sets:
            what = f"protocol {args.protocol!r}" if args.protocol else "any protocol"
            print(f"no complete {dataset} runs of {what} under {results_dir / 'runs'}", file=sys.stderr)
            return 1
        for s in sets:
            for note in s.notes:
                print(f"note ({dataset}, {s.label}): {note}", file=sys.stderr)
            draw = report_cifar10 if dataset == "cifar10" else report_imagenet
            written += draw(s, args.what, figures, tables)
            if args.what in ("tables", "all"):
                suffix = s.label if dataset == "cifar10" else f"imagenet_{s.label}"  # CIFAR-10 keeps its earlier name
                verdict = tables / f"degradation_verdict_{suffix}.md"
                verdict.write_text(
                    degradation_verdict(s.results, s.protocol, dataset)
                    + f"\nDrawn from {s.description}"
                    + (f", setting {s.setting} (the records' protocol_hash)" if s.setting else "")
                    + ".\n"
                )
                written.append(verdict)
                print(verdict.read_text())
        if dataset == "cifar10" and not args.protocol:
            written += report_budgets(results, args.what, figures, tables)
    if args.what == "all" and not (args.protocol or args.dataset):  # the whole picture only
        from resdeg.report.results_report import write_results_report

        written.append(write_results_report(results_dir, results, written))
    for path in written:
        print(f"wrote {path}")
    if args.wandb:
        from resdeg.report.wandb_report import log_report

        run_id = log_report(written, results_dir)
        print(
            f"W&B: the report's figures and tables are in run {run_id} (name 'report')"
            if run_id
            else "W&B disabled: the report was not logged",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
