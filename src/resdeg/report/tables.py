"""The paper's tables, ours beside the paper's numbers and the difference.

- Table 6 (CIFAR-10 test error, ResNets with option A);
- Table 2 (ImageNet top-1 error, 10-crop testing, plain and residual 18/34);
- Table 3 (ImageNet ResNet-34 top-1 / top-5 error, 10-crop testing, plain and options A/B/C).

Where several seeds of one configuration are complete, "ours" is their mean±std; only
ResNet-110 is written as the paper writes it, best (mean±std) over its runs. The
difference to the paper (mean, or best for ResNet-110) is given only for the paper's own
protocol: a short CPU protocol's numbers are not comparable with 64k iterations, so its
Table 6 shows ours, how the error changes with depth, and the paper's number as a labelled
reference.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from resdeg.record.schema import did_not_train
from resdeg.report.load import Results, compared
from resdeg.report.reference import TABLE2_TOP1, TABLE3_TOP1_TOP5, TABLE6_PARAMS_M, TABLE6_TEST_ERROR

# Table 6 writes ResNet-110 as "best (mean±std)" over 5 runs; every other number is one value
BEST_OF_SEEDS_DEPTHS = (110,)


def ours(errors: pd.Series, best_of_seeds: bool = False) -> str:
    errors = errors.astype(float)
    if len(errors) == 1:
        return f"{errors.iloc[0]:.2f}"
    if best_of_seeds:
        return f"{errors.min():.2f} ({errors.mean():.2f}±{errors.std():.2f})"
    return f"{errors.mean():.2f}±{errors.std():.2f}"


def difference(errors: pd.Series, paper: float | None, best_of_seeds: bool = False) -> float | None:
    if paper is None or errors.isna().all():
        return None
    errors = errors.astype(float)
    return round(float(errors.min() if best_of_seeds else errors.mean()) - paper, 2)


def _complete(results: Results) -> pd.DataFrame:
    return results.runs[results.runs.status == "complete"]


def _method(arch: str, depth: int) -> str:
    return f"plain-{depth}" if arch == "plain" else f"ResNet-{depth}"


def is_paper_protocol(protocol: str) -> bool:
    """The paper's own protocols (paper, paper_warmup), whose numbers are comparable with its tables."""
    return protocol in ("paper", "paper_warmup")


def table6(results: Results, protocol: str = "paper") -> pd.DataFrame:
    """Table 6 as the paper gives it: one row per depth of the paper (20, 32, 44, 56, 110,
    1202), and any other depth trained, with parameters. A depth without a complete run is
    listed with "--", so the table says what the sweep has not trained yet; its parameters
    are then the paper's (ours match them for every depth trained)."""
    runs = _complete(results)
    done = compared(runs[runs.arch == "residual"])
    rows, previous = [], None
    for depth in sorted(set(TABLE6_TEST_ERROR) | set(done.depth.astype(int))):
        group = done[done.depth == depth]
        paper = TABLE6_TEST_ERROR.get(depth)
        best = depth in BEST_OF_SEEDS_DEPTHS
        params = round(group.parameters.iloc[0] / 1e6, 2) if len(group) else TABLE6_PARAMS_M.get(depth)
        at_chance = len(group) > 0 and did_not_train(group.final_train_error)
        row = {
            "method": f"ResNet-{depth}",
            "# params (M)": params,
            "runs": len(group),
            "test error % (ours)": (ours(group.final_test_error, best) + (" (did not train)" if at_chance else ""))
            if len(group)
            else None,
        }
        # a net that never left chance is no depth result: it is not compared with its neighbours
        mean = float(group.final_test_error.astype(float).mean()) if len(group) and not at_chance else None
        if is_paper_protocol(protocol):
            row["test error % (paper)"] = paper
            row["difference (pts)"] = difference(group.final_test_error, paper, best) if len(group) else None
        else:
            # how the error changes with depth is what a short protocol can show
            row["vs. next shallower (pts)"] = None if previous is None or mean is None else round(mean - previous, 2)
            row["paper, 64k iterations (reference only)"] = paper
        previous = mean if mean is not None else previous
        rows.append(row)
    return pd.DataFrame(rows)


def shortcuts_table(results: Results) -> pd.DataFrame:
    """CIFAR-10 residual nets by shortcut option (not a table of the paper, which compares
    A/B/C on ImageNet only): final training and test error and parameters, per depth and option."""
    runs = _complete(results)
    done = runs[runs.arch == "residual"]
    options = done.groupby("depth").shortcut.nunique()
    done = done[done.depth.isin(options[options > 1].index)]  # depths trained with more than one option
    rows = []
    for (depth, option), group in done.groupby(["depth", "shortcut"]):
        rows.append(
            {
                "method": f"ResNet-{depth}",
                "option": option,
                "# params (M)": round(group.parameters.iloc[0] / 1e6, 3),
                "runs": len(group),
                "training error % (ours)": ours(group.final_train_error),
                "test error % (ours)": ours(group.final_test_error),
                "test error % (paper, option A)": TABLE6_TEST_ERROR.get(int(depth)) if option == "A" else None,
            }
        )
    return pd.DataFrame(rows)


def table2(results: Results) -> pd.DataFrame:
    """Top-1 error (%, 10-crop) of plain and residual (option A) nets of 18 and 34 layers."""
    runs = _complete(results)
    done = compared(runs)
    rows = []
    for (arch, depth), group in done.groupby(["arch", "depth"]):
        paper = TABLE2_TOP1.get((arch, int(depth)))
        errors = group["final_val_10crop_error"]
        rows.append(
            {
                "method": _method(arch, int(depth)),
                "runs": len(group),
                "top-1 err % (ours)": ours(errors),
                "top-1 err % (paper)": paper,
                "difference (pts)": difference(errors, paper),
            }
        )
    order = {"plain-18": 0, "plain-34": 1, "ResNet-18": 2, "ResNet-34": 3}
    return (
        pd.DataFrame(rows)
        .sort_values("method", key=lambda m: m.map(order).fillna(9), kind="stable")
        .reset_index(drop=True)
        if rows
        else pd.DataFrame(rows)
    )


def table3(results: Results) -> pd.DataFrame:
    """Top-1 and top-5 error (%, 10-crop) of 34-layer nets: plain, and ResNet with options A, B, C."""
    runs = _complete(results)
    done = runs[runs.depth == 34]
    rows = []
    for key, label in (("plain", "plain-34"), ("A", "ResNet-34 A"), ("B", "ResNet-34 B"), ("C", "ResNet-34 C")):
        group = done[done.arch == "plain"] if key == "plain" else done[done.shortcut == key]
        if group.empty:
            continue
        top1, top5 = TABLE3_TOP1_TOP5[key]
        rows.append(
            {
                "model": label,
                "runs": len(group),
                "top-1 err % (ours)": ours(group["final_val_10crop_error"]),
                "top-1 err % (paper)": top1,
                "top-1 difference (pts)": difference(group["final_val_10crop_error"], top1),
                "top-5 err % (ours)": ours(group["final_val_10crop_top5_error"]),
                "top-5 err % (paper)": top5,
                "top-5 difference (pts)": difference(group["final_val_10crop_top5_error"], top5),
            }
        )
    return pd.DataFrame(rows)


def write_table(
    table: pd.DataFrame,
    out_dir: Path,
    stem: str,
    caption: str,
    note: str | None = None,
    paper_table: str | None = None,
    latex_columns: dict[str, str] | None = None,
) -> list[Path]:
    """The table as markdown (with ``note``, a finding, below it), LaTeX and CSV.

    The caption is written once: markdown heads it with ``paper_table`` ("Table 6: ..."), LaTeX
    numbers its own table and names the paper's in the caption. ``latex_columns`` (column ->
    short header) picks what the LaTeX table shows where all columns would not fit a column
    of text; the markdown and CSV keep every column."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.md", out_dir / f"{stem}.tex", out_dir / f"{stem}.csv"]
    # a number the paper does not give is written "--", not "nan"
    markdown = table.astype(object).where(table.notna(), None).to_markdown(index=False, missingval="--")
    heading = f"{paper_table}: {caption}" if paper_table else caption
    paths[0].write_text(
        f"{heading}\n\n{markdown if len(table) else '(no complete runs)'}\n" + (f"\n{note}\n" if note else "")
    )
    paths[1].write_text(
        latex_table(table, f"{caption} (the paper's {paper_table})" if paper_table else caption, latex_columns)
    )
    table.to_csv(paths[2], index=False)
    return paths


def latex_table(table: pd.DataFrame, caption: str, columns: dict[str, str] | None = None) -> str:
    """A booktabs table that fits ``\\textwidth`` in a plain ``article``: the first column as
    wide as its text, the others sharing the rest (tabularx), headers wrapped within them.
    Needs ``booktabs``, ``tabularx`` and ``array`` (tests/unit/report/test_report.py compiles each)."""
    columns = {name: header for name, header in (columns or {n: n for n in table.columns}).items() if name in table}
    shown = table[list(columns)]
    cells = [[_latex_escape(str(header)) for header in columns.values()]]
    for row in shown.itertuples(index=False):
        cells.append(
            ["--" if pd.isna(v) else _latex_escape(f"{v:.2f}" if isinstance(v, float) else str(v)) for v in row]
        )
    lines = [" & ".join(row) + r" \\" for row in cells]
    # a column of short cells (a count, "yes") keeps its natural width; the others share the rest
    short = [max(len(row[i]) for row in cells) <= LATEX_SHORT_CELL for i in range(len(columns))]
    spec = "l" + "".join("r" if is_short else r">{\raggedleft\arraybackslash}X" for is_short in short[1:])
    environment = "tabularx" if "X" in spec else "tabular"
    width = "{\\textwidth}" if environment == "tabularx" else ""
    return "\n".join(
        [
            r"\begin{table}",
            r"\centering",
            r"\small",
            r"\setlength{\tabcolsep}{4pt}",
            rf"\caption{{{_latex_escape(caption)}}}",
            rf"\begin{{{environment}}}{width}{{{spec}}}",
            r"\toprule",
            lines[0],
            r"\midrule",
            *lines[1:],
            r"\bottomrule",
            rf"\end{{{environment}}}",
            r"\end{table}",
            "",
        ]
    )


# characters (headers included) up to which a LaTeX column keeps its natural width
LATEX_SHORT_CELL = 8


def _latex_escape(text: str) -> str:
    """Characters LaTeX reads as commands, and ones the default (OT1) font prints wrongly ("<" and ">" as "¡", "¿")."""
    for char in "&%$#_{}":
        text = text.replace(char, "\\" + char)
    return (
        text.replace("<", r"\textless{}")
        .replace(">", r"\textgreater{}")
        .replace("~", r"\textasciitilde{}")
        .replace("±", r"$\pm$")
    )
