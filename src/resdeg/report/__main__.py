"""Regenerate figures, tables and the degradation verdict from results/ alone.

    python -m resdeg.report [figures|tables|all] [--results results] [--protocol quick] [--dataset cifar10]

One set per (dataset, protocol): runs of different protocols are never mixed in a figure.
CIFAR-10: Fig. 6, Fig. 1, Table 6, the verdict. ImageNet: Fig. 4, Table 2, Table 3, the
verdict. Output goes to results/figures/ and results/tables/, named with the protocol; a
partial sweep is drawn as it is and the verdict names what is missing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # the CLI writes files only; notebooks keep their inline backend

from resdeg.report.figures import draw_fig1, draw_fig4, draw_fig6  # noqa: E402
from resdeg.report.load import load_results  # noqa: E402
from resdeg.report.tables import shortcuts_table, table2, table3, table6, write_table  # noqa: E402
from resdeg.report.verdict import degradation_verdict  # noqa: E402

DATASETS = ("cifar10", "imagenet")


def report_cifar10(subset, protocol: str, what: str, figures: Path, tables: Path) -> list[Path]:
    written = []
    if what in ("figures", "all"):
        written += draw_fig6(subset, protocol, figures, f"fig6_cifar10_{protocol}")
        written += draw_fig1(subset, protocol, figures, f"fig1_cifar10_{protocol}")
    if what in ("tables", "all"):
        written += write_table(table6(subset), tables, f"table6_cifar10_{protocol}",
                               f"Table 6: CIFAR-10 test error (%), ResNets with option A, protocol '{protocol}'")
        if subset.runs.shortcut[subset.runs.arch == "residual"].isin(["B", "C"]).any():
            written += write_table(shortcuts_table(subset), tables, f"shortcuts_cifar10_{protocol}",
                                   f"Shortcut options A/B/C on CIFAR-10 (not in the paper), protocol '{protocol}'")
    return written


def report_imagenet(subset, protocol: str, what: str, figures: Path, tables: Path) -> list[Path]:
    written = []
    if what in ("figures", "all"):
        written += draw_fig4(subset, protocol, figures, f"fig4_imagenet_{protocol}")
    if what in ("tables", "all"):
        written += write_table(table2(subset), tables, f"table2_imagenet_{protocol}",
                               f"Table 2: ImageNet top-1 error (%, 10-crop testing), protocol '{protocol}'")
        written += write_table(table3(subset), tables, f"table3_imagenet_{protocol}",
                               f"Table 3: ImageNet ResNet-34 top-1 / top-5 error (%, 10-crop testing), protocol '{protocol}'")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="?", choices=("figures", "tables", "all"), default="all")
    parser.add_argument("--results", default="results")
    parser.add_argument("--protocol", help="only this protocol (default: each protocol found)")
    parser.add_argument("--dataset", choices=DATASETS, help="only this dataset (default: each dataset found)")
    args = parser.parse_args(argv)

    results_dir = Path(args.results)
    results = load_results(results_dir)
    for problem in results.problems:
        print(f"warning: {problem}", file=sys.stderr)
    datasets = [args.dataset] if args.dataset else [d for d in DATASETS if (results.runs.dataset == d).any()]
    if not datasets:
        print(f"no run records under {results_dir / 'runs'}: run `make sweep-degradation` first", file=sys.stderr)
        return 1
    written = []
    for dataset in datasets:
        runs = results.runs[results.runs.dataset == dataset]
        protocols = [args.protocol] if args.protocol else sorted(runs.protocol.dropna().unique())
        for protocol in protocols:
            subset = results.of(dataset, protocol)
            if subset.runs.empty:
                print(f"no {dataset} runs of protocol {protocol!r} under {results_dir / 'runs'}", file=sys.stderr)
                return 1
            draw = report_cifar10 if dataset == "cifar10" else report_imagenet
            written += draw(subset, protocol, args.what, results_dir / "figures", results_dir / "tables")
            if args.what in ("tables", "all"):
                suffix = protocol if dataset == "cifar10" else f"imagenet_{protocol}"  # CIFAR-10 keeps its earlier name
                verdict = results_dir / "tables" / f"degradation_verdict_{suffix}.md"
                verdict.write_text(degradation_verdict(subset, protocol, dataset))
                written.append(verdict)
                print(verdict.read_text())
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
