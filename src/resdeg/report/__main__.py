"""Regenerate figures, tables and the degradation verdict from results/ alone.

    python -m resdeg.report [figures|tables|all] [--results results] [--protocol quick]

One set per (dataset, protocol): runs of different protocols are never mixed in a figure.
Output goes to results/figures/ and results/tables/, named with the protocol.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # the CLI writes files only; notebooks keep their inline backend

from resdeg.report.figures import draw_fig1, draw_fig6  # noqa: E402
from resdeg.report.load import load_results
from resdeg.report.tables import table6, write_table  # noqa: E402
from resdeg.report.verdict import degradation_verdict  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", nargs="?", choices=("figures", "tables", "all"), default="all")
    parser.add_argument("--results", default="results")
    parser.add_argument("--protocol", help="only this protocol (default: each protocol found)")
    args = parser.parse_args(argv)

    results_dir = Path(args.results)
    results = load_results(results_dir)
    for problem in results.problems:
        print(f"warning: {problem}", file=sys.stderr)
    cifar = results.runs[results.runs.dataset == "cifar10"]
    protocols = [args.protocol] if args.protocol else sorted(cifar.protocol.dropna().unique())
    if cifar.empty:
        print(f"no CIFAR-10 run records under {results_dir / 'runs'}: run `make sweep-degradation` first", file=sys.stderr)
        return 1
    written = []
    for protocol in protocols:
        subset = results.of("cifar10", protocol)
        if subset.runs.empty:
            print(f"no CIFAR-10 runs of protocol {protocol!r}", file=sys.stderr)
            return 1
        if args.what in ("figures", "all"):
            written += draw_fig6(subset, protocol, results_dir / "figures", f"fig6_cifar10_{protocol}")
            written += draw_fig1(subset, protocol, results_dir / "figures", f"fig1_cifar10_{protocol}")
        if args.what in ("tables", "all"):
            written += write_table(table6(subset), results_dir / "tables", f"table6_cifar10_{protocol}",
                                   f"Table 6: CIFAR-10 test error (%), ResNets with option A, protocol '{protocol}'")
            verdict = results_dir / "tables" / f"degradation_verdict_{protocol}.md"
            verdict.write_text(degradation_verdict(subset, protocol))
            written.append(verdict)
            print(verdict.read_text())
    for path in written:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
