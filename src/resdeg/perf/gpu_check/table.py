"""The check's rows, written out after every section (a check cut short keeps what it
measured), as results/bench/gpu_<device>.csv (format in results/README.md) and a markdown view."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from resdeg.devices import device_name, device_slug
from resdeg.perf.gpu_check.plan import COLUMNS, Plan


class Check:
    def __init__(self, plan: Plan, out: Path, cifar_root: str):
        self.plan, self.out, self.cifar_root = plan, out, cifar_root
        self.rows: list[dict] = []
        self.device = device_name()
        slug = device_slug()
        self.stem = f"gpu_{slug}" if plan.name == "full" else f"gpu_smoke_{slug}"

    def add(self, section: str, metric: str, value, unit: str = "", note: str = "", **keys) -> None:
        row = {column: keys.get(column, "") for column in COLUMNS}
        row.update(section=section, metric=metric, value=value, unit=unit, note=note)
        self.rows.append(row)
        shown = " ".join(
            str(keys[k]) for k in ("model", "precision", "compile", "loop", "runs") if keys.get(k) not in (None, "")
        )
        print(f"[gpu-check] {section}: {shown} {metric} = {value} {unit} {note}".replace("  ", " "), flush=True)

    def overrides(self, *more: str) -> list[str]:
        return [
            "protocol=cifar_paper",
            f"data.root={self.cifar_root}",
            f"protocol.batch_size={self.plan.batch_size}",
            *more,
        ]

    def table(self) -> pd.DataFrame:
        table = pd.DataFrame(self.rows, columns=COLUMNS)
        return table.assign(device=self.device, torch=torch.__version__, check=self.plan.name)

    def write(self) -> tuple[Path, Path]:
        self.out.mkdir(parents=True, exist_ok=True)
        csv_path, md_path = self.out / f"{self.stem}.csv", self.out / f"{self.stem}.md"
        table = self.table()
        table.to_csv(csv_path, index=False)
        md_path.write_text(markdown(table, self.plan.batch_size))
        return csv_path, md_path


def markdown(table: pd.DataFrame, batch: int) -> str:
    device, check = (table[c].iloc[0] if len(table) else "" for c in ("device", "check"))
    lines = [
        f"# make gpu-check: {device}",
        "",
        f"Check: {check}; torch {table['torch'].iloc[0] if len(table) else torch.__version__}. "
        "Every value from `python -m resdeg.perf.gpu_check`; format in results/README.md.",
        "",
    ]
    shown = table[table.metric.isin(["skipped", "error"])]
    numbers = table.assign(value=pd.to_numeric(table["value"], errors="coerce"))
    throughput_rows = numbers[
        (numbers.section == "throughput")
        & numbers.metric.isin(["images_per_s", "warmup_s", "peak_memory_mib", "harness_over_bare"])
    ]
    if len(throughput_rows):
        pivot = throughput_rows.pivot_table(
            index=["model", "precision", "compile"], columns=["loop", "metric"], values="value", aggfunc="first"
        )
        pivot.columns = [f"{loop} {metric}" for loop, metric in pivot.columns]
        lines += [f"## Training throughput, batch {batch}", "", pivot.reset_index().to_markdown(index=False), ""]
    for section, title in (
        ("concurrency", "Runs side by side on one GPU"),
        ("syncs", "Host-device synchronisations per training step"),
        ("end_to_end", "A paper-protocol run end to end"),
        ("projection", "Projected wall times"),
    ):
        rows = table[(table.section == section) & ~table.metric.isin(["skipped", "error"])]
        if len(rows):
            columns = [
                c
                for c in ("model", "loop", "runs", "metric", "value", "unit", "note")
                if rows[c].astype(str).ne("").any()
            ]
            lines += [f"## {title}", "", rows[columns].to_markdown(index=False), ""]
    if len(shown):
        lines += [
            "## Not measured",
            "",
            shown[["section", "model", "precision", "compile", "runs", "metric", "note"]].to_markdown(index=False),
            "",
        ]
    return "\n".join(lines)
