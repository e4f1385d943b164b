"""The paper's figures, drawn from results/ alone.

Fig. 6 (CIFAR-10): one panel per kind (plain, residual), one colour per depth, dashed =
training error, bold = test error, x = iterations (1e4), y = error (%).
Fig. 1 (CIFAR-10): plain-20 vs plain-56, training error (left) and test error (right).
Fig. 4 (ImageNet): plain-18/34 (left) and ResNet-18/34 (right), thin = training error,
bold = centre-crop validation error, x = iterations (1e4), y = error (%).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from resdeg.report.load import Results
from resdeg.report.reference import FIG4_XLIM, FIG4_YLIM, FIG6_XLIM, FIG6_YLIM

DEPTH_COLOURS = {20: "#e6a100", 32: "#2a9df4", 44: "#d62728", 56: "#2ca02c", 110: "#000000", 1202: "#7f7f7f",
                 18: "#d62728", 34: "#1f77b4", 50: "#2ca02c", 101: "#9467bd", 152: "#000000"}
KIND_TITLES = {"plain": "plain", "residual": "ResNet"}
PANEL_TITLES = {"plain": "plain nets", "residual": "ResNets"}


def mean_curve(results: Results, runs: pd.DataFrame, split: str) -> pd.DataFrame:
    """The error curve averaged over the seeds of one configuration."""
    curves = [results.curve(run_id, split) for run_id in runs.run_id]
    curves = [c for c in curves if len(c)]
    if not curves:
        return pd.DataFrame(columns=["iteration", "value"])
    return pd.concat(curves).groupby("iteration", as_index=False)["value"].mean()


def _axes_style(ax, protocol: str, xlim=FIG6_XLIM, ylim=FIG6_YLIM) -> None:
    ax.set_xlabel("iter. (1e4)")
    ax.set_ylabel("error (%)")
    ax.grid(alpha=0.3)
    if protocol == "paper":  # the paper's axes; a short protocol's errors would fall outside them
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)


def _kind_panels(results: Results, protocol: str, dataset_title: str, eval_split: str, train_style: dict,
                 eval_width: float, legend_title: str, xlim, ylim):
    """Plain nets left, residual nets (option A) right; per depth a training and an evaluation curve."""
    runs = results.runs
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, kind in zip(axes, ("plain", "residual")):
        kind_runs = runs[(runs.arch == kind) & (runs.shortcut.eq("A") | (runs.arch == "plain"))]
        for depth in sorted(kind_runs.depth.unique()):
            of_depth = kind_runs[kind_runs.depth == depth]
            colour = DEPTH_COLOURS.get(int(depth), None)
            train = mean_curve(results, of_depth, "train")
            evaluation = mean_curve(results, of_depth, eval_split)
            ax.plot(train.iteration / 1e4, train.value, color=colour, **train_style)
            ax.plot(evaluation.iteration / 1e4, evaluation.value, "-", color=colour, linewidth=eval_width,
                    label=f"{KIND_TITLES[kind]}-{depth}")
        ax.set_title(f"{PANEL_TITLES[kind]} on {dataset_title}")
        _axes_style(ax, protocol, xlim, ylim)
        if ax.lines:
            ax.legend(loc="upper right", fontsize=8, title=legend_title, title_fontsize=7)
    fig.suptitle(f"{dataset_title}, protocol '{protocol}'", fontsize=10)
    fig.tight_layout()
    return fig


def fig6(results: Results, protocol: str):
    """Fig. 6 (CIFAR-10) as a matplotlib Figure: dashed training error, bold test error."""
    return _kind_panels(results, protocol, "CIFAR-10", "test", {"linestyle": "--", "linewidth": 1}, 2.2,
                        "dashed: training, bold: test", FIG6_XLIM, FIG6_YLIM)


def fig4(results: Results, protocol: str):
    """Fig. 4 (ImageNet) as a matplotlib Figure: thin training error, bold centre-crop validation error."""
    return _kind_panels(results, protocol, "ImageNet", "val", {"linestyle": "-", "linewidth": 0.8}, 2.4,
                        "thin: training, bold: validation (centre crop)", FIG4_XLIM, FIG4_YLIM)


def draw_fig4(results: Results, protocol: str, out_dir: Path, stem: str = "fig4_imagenet") -> list[Path]:
    return _save(fig4(results, protocol), out_dir, stem)


def draw_fig6(results: Results, protocol: str, out_dir: Path, stem: str = "fig6_cifar10") -> list[Path]:
    return _save(fig6(results, protocol), out_dir, stem)


def draw_fig1(results: Results, protocol: str, out_dir: Path, stem: str = "fig1_cifar10") -> list[Path]:
    runs = results.runs[results.runs.arch == "plain"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, split, title in zip(axes, ("train", "test"), ("training error (%)", "test error (%)")):
        for depth in (20, 56):
            curve = mean_curve(results, runs[runs.depth == depth], split)
            ax.plot(curve.iteration / 1e4, curve.value, color=DEPTH_COLOURS[depth], linewidth=2, label=f"{depth}-layer")
        ax.set_title(title)
        _axes_style(ax, protocol)
        if ax.lines:
            ax.legend()
    fig.tight_layout()
    return _save(fig, out_dir, stem)


def _save(fig, out_dir: Path, stem: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"]
    for path in paths:
        # no creation date in the PDF: regenerating a figure from the same records gives the same file
        fig.savefig(path, dpi=150, metadata={"CreationDate": None} if path.suffix == ".pdf" else None)
    plt.close(fig)
    return paths
