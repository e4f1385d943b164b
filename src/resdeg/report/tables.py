"""Table 6 (CIFAR-10 test error, ResNets with option A): ours beside the paper's."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from resdeg.report.load import Results
from resdeg.report.reference import TABLE6_TEST_ERROR


def table6(results: Results) -> pd.DataFrame:
    runs = results.runs
    done = runs[(runs.arch == "residual") & (runs.shortcut == "A") & (runs.status == "complete")]
    rows = []
    for depth, group in done.groupby("depth"):
        errors = group.final_test_error.astype(float)
        ours = f"{errors.mean():.2f}" if len(errors) == 1 else f"{errors.min():.2f} ({errors.mean():.2f}±{errors.std():.2f})"
        paper = TABLE6_TEST_ERROR.get(int(depth))
        rows.append({
            "method": f"ResNet-{depth}", "# params (M)": round(group.parameters.iloc[0] / 1e6, 2),
            "runs": len(errors), "test error % (ours)": ours, "test error % (paper)": paper,
            "difference (pts)": None if paper is None else round(errors.min() - paper, 2),
        })
    return pd.DataFrame(rows)


def write_table(table: pd.DataFrame, out_dir: Path, stem: str, caption: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.md", out_dir / f"{stem}.tex", out_dir / f"{stem}.csv"]
    paths[0].write_text(f"{caption}\n\n{table.to_markdown(index=False) if len(table) else '(no complete runs)'}\n")
    paths[1].write_text(table.to_latex(index=False, caption=caption, na_rep="--"))
    table.to_csv(paths[2], index=False)
    return paths
