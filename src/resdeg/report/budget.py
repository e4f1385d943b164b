"""The budget study (not in the paper): how much training the residual advantage needs.

Plain and residual nets of 20 and 56 layers (option A) are trained under one protocol
family (``protocol_family`` in the record, e.g. ``quick``) at several budgets (its
``iterations``: quick-500, quick-1000...). For each budget and seed the *gap* is the final
training error of the 56-layer net minus that of the 20-layer net of the same kind and
seed: positive = the deeper net trains worse (degradation). The paper's claim is a
positive plain gap and a negative residual gap (the deeper ResNet trains better, beyond the
seed spread: ``residual_half``); this study shows from which budget a short CPU protocol
reproduces both (`make sweep-budget`, then `make report`), and where the ResNet gap crosses zero.

Each budget's runs are its protocol's main set (resdeg.report.sets): complete runs of one
setting only.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from resdeg.report.figures import save_figure
from resdeg.report.load import Results, compared
from resdeg.report.sets import report_sets
from resdeg.report.verdict import residual_half, seed_spread

SHALLOW, DEEP = 20, 56
KINDS = {"plain": "plain", "residual": "ResNet"}


def budget_runs(results: Results, family: str, dataset: str = "cifar10") -> pd.DataFrame:
    """Complete runs of the family's main sets, depths 20 and 56, plain or option A."""
    runs = results.runs
    names = sorted(runs[(runs.dataset == dataset) & (runs.protocol_family == family)].protocol.dropna().unique())
    frames = []
    for name in names:
        sets = report_sets(results, dataset, name)
        if sets:
            frames.append(sets[0].results.runs)
    if not frames:
        return runs.iloc[0:0]
    done = pd.concat(frames, ignore_index=True)
    done = compared(done)
    return done[done.depth.isin([SHALLOW, DEEP])]


def seed_gaps(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (budget, kind, seed) with both depths: their final training errors and the gap."""
    wide = runs.pivot_table(
        index=["iterations", "arch", "seed"], columns="depth", values="final_train_error", aggfunc="first"
    )
    if SHALLOW not in wide or DEEP not in wide:
        return pd.DataFrame(columns=["iterations", "arch", "seed", SHALLOW, DEEP, "gap"])
    wide = wide[[SHALLOW, DEEP]].dropna().reset_index()
    wide["gap"] = wide[DEEP] - wide[SHALLOW]
    return wide


# what the LaTeX budget table shows (all 15 columns cannot fit a column of text): the gaps, their
# seed ranges and the verdict; the errors behind them are in the markdown and CSV tables
BUDGET_LATEX_COLUMNS = {
    "iterations": "iterations",
    "plain gap (pts)": "plain gap (pts)",
    "plain gap range": "plain gap range",
    "ResNet gap (pts)": "ResNet gap (pts)",
    "ResNet gap range": "ResNet gap range",
    "residual half": "residual half",
    "both halves": "both halves",
}


def budget_table(results: Results, family: str = "quick", dataset: str = "cifar10") -> pd.DataFrame:
    runs = budget_runs(results, family, dataset)
    gaps = seed_gaps(runs)
    rows = []
    for budget, of_budget in gaps.groupby("iterations"):
        row = {"iterations": int(budget)}
        for arch, label in KINDS.items():
            g = of_budget[of_budget.arch == arch]
            row[f"{label} seeds"] = len(g)
            row[f"{label}-{SHALLOW} train err %"] = _mean(g[SHALLOW])
            row[f"{label}-{DEEP} train err %"] = _mean(g[DEEP])
            row[f"{label} gap (pts)"] = _mean(g.gap)
            row[f"{label} gap range"] = f"{g.gap.min():+.1f} to {g.gap.max():+.1f}" if len(g) > 1 else None
        of_runs = runs[runs.iterations == budget]
        # one seed of each of the four nets, trained one after another (training + evaluation)
        per_net = of_runs.groupby(["arch", "depth"])[["train_seconds", "eval_seconds"]].mean()
        row["minutes (sum over these nets)"] = round(per_net.train_seconds.sum() / 60, 1)
        row["of which test-error evaluation"] = round(per_net.eval_seconds.sum() / 60, 1)
        plain, resnet = row.get("plain gap (pts)"), row.get("ResNet gap (pts)")
        # the verdict's rules: plain gap above zero (and the seed spread); the residual half it shows
        plain_runs, resnet_runs = (of_budget[of_budget.arch == arch] for arch in KINDS)
        resnet_spread = seed_spread(resnet_runs[SHALLOW], resnet_runs[DEEP])
        half = None if resnet is None else residual_half(resnet, resnet_spread, resnet > (resnet_spread or 0.0))
        row["residual half"] = half
        row["both halves"] = (
            None
            if plain is None or half is None
            else (
                "yes"
                if plain > (seed_spread(plain_runs[SHALLOW], plain_runs[DEEP]) or 0.0) and half == "better"
                else "no"
            )
        )
        rows.append(row)
    return pd.DataFrame(rows)


def budget_finding(table: pd.DataFrame) -> str:
    """The study's answer in one sentence: the first budget at which ResNet-56 trains better
    than ResNet-20 beyond the seed spread, or that no budget trained shows it."""
    if not len(table):
        return "No budget has all four nets complete."
    better = table[table["residual half"] == "better"]
    if len(better):
        first = better.iloc[0]
        return (
            f"ResNet-{DEEP} first trains better than ResNet-{SHALLOW} beyond the seed spread at "
            f"{int(first.iterations)} iterations (ResNet gap {first['ResNet gap (pts)']:+.2f} points, "
            f"{int(first['ResNet seeds'])} seeds)."
        )
    last = table.iloc[-1]
    return (
        f"No budget trained shows ResNet-{DEEP} better than ResNet-{SHALLOW} beyond the seed spread (the largest, "
        f"{int(last.iterations)} iterations: ResNet gap {last['ResNet gap (pts)']:+.2f} points, residual half "
        f"'{last['residual half']}')."
    )


def resnet_crossover(gaps: pd.DataFrame) -> float | None:
    """The budget at which the mean ResNet gap first goes from above zero to zero or below,
    interpolated on the log axis between the two budgets around it; None where it never does."""
    mean = gaps[gaps.arch == "residual"].groupby("iterations").gap.mean().sort_index()
    for (b1, g1), (b2, g2) in zip(mean.items(), list(mean.items())[1:]):
        if g1 > 0 >= g2:
            return float(2 ** (np.log2(b1) + (np.log2(b2) - np.log2(b1)) * g1 / (g1 - g2)))
    return None


def _mean(values: pd.Series) -> float | None:
    return round(float(values.mean()), 2) if len(values) else None


def budget_figure(results: Results, family: str = "quick", dataset: str = "cifar10"):
    runs = budget_runs(results, family, dataset)
    gaps = seed_gaps(runs)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.3))
    colours = {"plain": "#d62728", "residual": "#1f77b4"}
    for arch, label in KINDS.items():
        g = gaps[gaps.arch == arch].groupby("iterations").gap
        if not len(g):
            continue
        mean, low, high = g.mean(), g.min(), g.max()
        left.plot(mean.index, mean.values, "o-", color=colours[arch], label=f"{label}: {DEEP} minus {SHALLOW} layers")
        left.fill_between(mean.index, low.values, high.values, color=colours[arch], alpha=0.15, linewidth=0)
        seeds = gaps[gaps.arch == arch]
        left.scatter(seeds.iterations, seeds.gap, s=10, color=colours[arch], alpha=0.6)
        for depth, style in ((SHALLOW, "--"), (DEEP, "-")):
            e = gaps[gaps.arch == arch].groupby("iterations")[depth].mean()
            right.plot(e.index, e.values, style, marker="o", color=colours[arch], label=f"{label}-{depth}")
    left.axhline(0, color="grey", linewidth=0.8)
    crossing = resnet_crossover(gaps)
    if crossing is not None:
        left.axvline(
            crossing,
            color=colours["residual"],
            linestyle=":",
            linewidth=1.2,
            label=f"ResNet gap crosses 0 (~{crossing:.0f} iterations)",
        )
    left.set_ylabel("final training error gap (points)")
    left.set_title("deeper minus shallower (> 0: the deeper net trains worse)", fontsize=9)
    right.set_ylabel("final training error (%)")
    right.set_title("final training error", fontsize=9)
    budgets = sorted(gaps.iterations.unique())
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        if budgets:  # the budgets themselves as ticks, not powers of two
            ax.set_xticks(budgets, [str(int(b)) for b in budgets])
            ax.minorticks_off()
        ax.set_xlabel("training budget (iterations)")
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    seeds = gaps.groupby(["iterations", "arch"]).size()
    fig.suptitle(
        f"Budget study, CIFAR-10, protocol family '{family}' (linear warm-up, lr /10 at 50% and 75%); "
        f"dots: seeds, bands: their range ({int(seeds.min()) if len(seeds) else 0}-"
        f"{int(seeds.max()) if len(seeds) else 0} per point)",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def families_with_budgets(results: Results, dataset: str = "cifar10") -> list[str]:
    """Protocol families trained at more than one budget: each gets a budget study."""
    runs = results.runs[(results.runs.dataset == dataset) & results.runs.protocol_family.notna()]
    budgets = runs.groupby("protocol_family").iterations.nunique()
    return sorted(budgets[budgets > 1].index)


def draw_budget(results: Results, family: str, out_dir: Path, stem: str) -> list[Path]:
    return save_figure(budget_figure(results, family), out_dir, stem)
