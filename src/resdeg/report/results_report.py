"""results/REPORT.md: every number the runs measured, in one file that `make report` rewrites.

The README and docs/ say what the harness does and link here for what it measured, so a
number can never drift from the records: this file is made from the verdicts and tables the
report just wrote, the records' own speed (``train_images_per_s``, ``train_seconds``) and
the benchmark files under results/bench/, each with the command that produced it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from resdeg.report.load import Results

HEADER = """# Results report

Written by `make report` (`python -m resdeg.report all`) from `results/runs/` and
`results/bench/` alone; do not edit: rerun the command. Every number below comes from a run
record or a benchmark file of this harness. Record schema and file formats:
[`results/README.md`](README.md).
"""


def _demoted(markdown: str) -> str:
    """A generated file's text inside this one: its headings two levels down (under a section)."""
    return "\n".join(f"##{line}" if line.startswith("#") else line for line in markdown.strip().splitlines())


def _speed(results: Results) -> str:
    """The machines' measured training speed, from the records that have it, per net and protocol."""
    runs = results.runs
    if "train_images_per_s" not in runs or runs.train_images_per_s.isna().all():
        return "No record has a measured training speed yet (records before `train_images_per_s` existed)."
    have = runs[runs.train_images_per_s.notna()]
    table = (
        have.groupby(["protocol", "name"])
        .agg(
            runs=("run_id", "count"),
            images_per_s=("train_images_per_s", "median"),
            minutes=("train_seconds", lambda s: round(float(s.median()) / 60, 1)),
        )
        .reset_index()
    )
    table["images_per_s"] = table.images_per_s.round(0)
    return (
        "Training images/s measured by each run on its own machine (the median over runs; `summary.json` "
        "`train_images_per_s`, timed after the first 5 iterations and without evaluations; `minutes`: the "
        "median wall time of training with its evaluations, `train_seconds`). Machines of one kind differ "
        "several times over in speed: read a wall time with the speed beside it.\n\n" + table.to_markdown(index=False)
    )


def _signals_cost(results: Results) -> str | None:
    """What Section 4.1's probe costs against an evaluation, from the records that measured both."""
    runs = results.runs
    have = runs[
        runs.signals_seconds.notna() & (runs.signal_measurements.fillna(0) > 0) & (runs.evaluations.fillna(0) > 0)
    ]
    if not len(have):
        return None
    table = (
        have.assign(
            s_per_evaluation=have.eval_seconds / have.evaluations,
            s_per_signal_measurement=have.signals_seconds / have.signal_measurements,
        )
        .groupby(["protocol", "name"])[["s_per_evaluation", "s_per_signal_measurement"]]
        .median()
    )
    table["signals_over_evaluation_%"] = 100 * table.s_per_signal_measurement / table.s_per_evaluation
    return (
        "What Section 4.1's signals cost (`signals_seconds` / `signal_measurements`: one forward and backward "
        "pass of a training batch) against one evaluation of the test set (`eval_seconds` / `evaluations`), "
        "median over runs:\n\n" + table.round(3).reset_index().to_markdown(index=False)
    )


def _bench(bench_dir: Path) -> list[str]:
    parts = []
    for path in sorted(bench_dir.glob("*.csv")):
        command = (
            "make gpu-check"
            if path.name.startswith("gpu_")
            else "python -m resdeg.perf.bench --imagenet-root PATH"
            if path.name.startswith("imagenet_loader")
            else "make bench"
        )
        table = pd.read_csv(path)
        parts.append(f"### `bench/{path.name}` (`{command}`)\n\n{table.to_markdown(index=False)}")
    return parts


def write_results_report(results_dir: Path, results: Results, written: list[Path]) -> Path:
    """REPORT.md from the files the report wrote (verdicts and tables embedded, figures linked)."""
    results_dir = Path(results_dir)
    cost = _signals_cost(results)
    sections = [HEADER, "## Measured speed\n\n" + _speed(results) + (f"\n\n{cost}" if cost else "")]
    verdicts = [p for p in written if p.suffix == ".md" and p.name.startswith("degradation_verdict")]
    tables = [p for p in written if p.suffix == ".md" and not p.name.startswith("degradation_verdict")]
    figures = [p for p in written if p.suffix == ".png"]
    if verdicts:
        sections.append("## Verdicts\n\n" + "\n\n".join(_demoted(p.read_text()) for p in verdicts))
    for path in tables:
        sections.append(f"## `tables/{path.name}`\n\n" + _demoted(path.read_text()))
    if figures:
        sections.append(
            "## Figures\n\n"
            + "\n".join(f"- [`figures/{p.name}`]({p.relative_to(results_dir).as_posix()})" for p in figures)
        )
    bench = _bench(results_dir / "bench")
    if bench:
        sections.append("## Benchmarks\n\n" + "\n\n".join(bench))
    path = results_dir / "REPORT.md"
    path.write_text("\n\n".join(s.strip() for s in sections) + "\n")
    return path
