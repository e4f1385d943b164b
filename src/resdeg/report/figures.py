"""The paper's figures, drawn from results/ alone.

Fig. 6 (CIFAR-10): one panel per kind (plain, residual), and a third, ResNet-110 against
ResNet-1202, where either was trained; one colour per depth, dashed =
training error, bold = test error, x = iterations (in units of 1e4 for long runs, as the
paper's; in iterations for short ones), y = error (%). Where a net has several seeds, the
line is their mean and a band their range.
Fig. 1 (CIFAR-10): plain-20 vs plain-56, training error (left) and test error (right).
Fig. 7 (CIFAR-10): std of the layer responses, in the network's order and sorted.
Fig. 4 (ImageNet): plain-18/34 (left) and ResNet-18/34 (right), thin = training error,
bold = centre-crop validation error, x = iterations (1e4), y = error (%).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from resdeg.record.schema import did_not_train
from resdeg.report.load import Results, compared
from resdeg.report.reference import FIG4_XLIM, FIG4_YLIM, FIG6_XLIM, FIG6_YLIM

DEPTH_COLOURS = {
    20: "#e6a100",
    32: "#2a9df4",
    44: "#d62728",
    56: "#2ca02c",
    110: "#000000",
    1202: "#7f7f7f",
    18: "#d62728",
    34: "#1f77b4",
    50: "#2ca02c",
    101: "#9467bd",
    152: "#000000",
}
KIND_TITLES = {"plain": "plain", "residual": "ResNet"}
PANEL_TITLES = {"plain": "plain nets", "residual": "ResNets"}


def mean_curve(results: Results, runs: pd.DataFrame, split: str) -> pd.DataFrame:
    """The error curve averaged over the seeds of one configuration: iteration, value (the
    mean), low and high (the seed range; equal to the mean for one seed), seeds."""
    curves = [results.curve(run_id, split) for run_id in runs.run_id]
    curves = [c for c in curves if len(c)]
    if not curves:
        return pd.DataFrame(columns=["iteration", "value", "low", "high", "seeds"])
    by_iteration = pd.concat(curves).groupby("iteration")["value"]
    return pd.DataFrame(
        {
            "value": by_iteration.mean(),
            "low": by_iteration.min(),
            "high": by_iteration.max(),
            "seeds": by_iteration.count(),
        }
    ).reset_index()


# Long runs are drawn in units of 1e4 iterations, as the paper draws 64k; short ones in iterations
LONG_RUN = 20_000


def x_scale(results: Results) -> tuple[float, str]:
    """(divisor, axis label) for the iterations of these runs."""
    longest = results.runs.iterations.max()
    return (1e4, "iter. (1e4)") if longest == longest and longest >= LONG_RUN else (1, "iterations")


def plot_with_range(ax, curve: pd.DataFrame, scale: float, **style) -> None:
    """The mean curve, and where several seeds were averaged, their range as a band."""
    ax.plot(curve.iteration / scale, curve.value, **style)
    if len(curve) and curve.seeds.max() > 1:
        ax.fill_between(
            curve.iteration / scale, curve.low, curve.high, color=style.get("color"), alpha=0.15, linewidth=0
        )


def _axes_style(ax, protocol: str, x_label: str, xlim=FIG6_XLIM, ylim=FIG6_YLIM) -> None:
    ax.set_xlabel(x_label)
    ax.set_ylabel("error (%)")
    ax.grid(alpha=0.3)
    if protocol == "paper":  # the paper's axes; a short protocol's errors would fall outside them
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)


# Fig. 6's third panel: "ResNet-110 vs ResNet-1202" (the paper's nets of over 1000 layers)
DEEP_PANEL_DEPTHS = (110, 1202)
DEEP_PANEL_TITLE = "ResNet-110 vs ResNet-1202"
VERY_DEEP = 1202


def _kind_panels(
    results: Results,
    protocol: str,
    dataset_title: str,
    eval_split: str,
    train_style: dict,
    eval_width: float,
    legend_title: str,
    xlim,
    ylim,
    caption: str | None,
    deep_panel: bool = False,
):
    """Plain nets left, residual nets (option A) right; per depth a training and an evaluation
    curve. With ``deep_panel`` and a ResNet-1202 or -110 among the runs, Fig. 6's third panel:
    ResNet-110 against ResNet-1202 (the middle panel then draws ResNets up to 110 layers)."""
    runs = results.runs
    scale, x_label = x_scale(results)
    residual = compared(runs[runs.arch == "residual"])
    panels = [("plain", PANEL_TITLES["plain"], None), ("residual", PANEL_TITLES["residual"], None)]
    if deep_panel and residual.depth.isin(DEEP_PANEL_DEPTHS).any():
        panels = [
            panels[0],
            ("residual", PANEL_TITLES["residual"], lambda d: d < VERY_DEEP),
            ("residual", DEEP_PANEL_TITLE, lambda d: d in DEEP_PANEL_DEPTHS),
        ]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.3), sharey=True)
    for ax, (kind, title, depths) in zip(axes, panels):
        kind_runs = compared(runs[runs.arch == kind])
        if depths is not None:
            kind_runs = kind_runs[[depths(int(d)) for d in kind_runs.depth]]
        for depth in sorted(kind_runs.depth.unique()):
            of_depth = kind_runs[kind_runs.depth == depth]
            colour = DEPTH_COLOURS.get(int(depth), None)
            plot_with_range(ax, mean_curve(results, of_depth, "train"), scale, color=colour, **train_style)
            at_chance = " (did not train)" if did_not_train(of_depth.final_train_error) else ""
            plot_with_range(
                ax,
                mean_curve(results, of_depth, eval_split),
                scale,
                linestyle="-",
                color=colour,
                linewidth=eval_width,
                label=f"{KIND_TITLES[kind]}-{depth}{at_chance}",
            )
        if title == DEEP_PANEL_TITLE:  # a panel of two nets says which one the set lacks
            missing = [f"ResNet-{d}" for d in DEEP_PANEL_DEPTHS if d not in set(kind_runs.depth)]
            if missing:
                ax.text(
                    0.03,
                    0.03,
                    f"no complete run in this set: {', '.join(missing)}",
                    transform=ax.transAxes,
                    fontsize=8,
                    color="#555555",
                )
        ax.set_title(f"{title} on {dataset_title}")
        _axes_style(ax, protocol, x_label, xlim, ylim)
        if ax.lines:
            ax.legend(loc="best", fontsize=8, title=legend_title, title_fontsize=7)  # where it covers no curve
    _suptitle(fig, f"{dataset_title}, protocol '{protocol}'", caption, results)
    return fig


def _suptitle(fig, title: str, caption: str | None, results: Results) -> None:
    """The protocol and which runs were drawn, on the figure itself (a PNG travels alone)."""
    several = (results.runs.groupby(["arch", "depth", "shortcut"], dropna=False).size() > 1).any()
    lines = [title] + ([caption] if caption else []) + (["bands: range over seeds"] if several else [])
    fig.suptitle("\n".join(lines), fontsize=9)
    fig.tight_layout()


def fig6(results: Results, protocol: str, caption: str | None = None):
    """Fig. 6 (CIFAR-10) as a matplotlib Figure: dashed training error, bold test error."""
    return _kind_panels(
        results,
        protocol,
        "CIFAR-10",
        "test",
        {"linestyle": "--", "linewidth": 1},
        2.2,
        "dashed: training, bold: test",
        FIG6_XLIM,
        FIG6_YLIM,
        caption,
        deep_panel=True,
    )


def fig4(results: Results, protocol: str, caption: str | None = None):
    """Fig. 4 (ImageNet) as a matplotlib Figure: thin training error, bold centre-crop validation error."""
    return _kind_panels(
        results,
        protocol,
        "ImageNet",
        "val",
        {"linestyle": "-", "linewidth": 0.8},
        2.4,
        "thin: training, bold: validation (centre crop)",
        FIG4_XLIM,
        FIG4_YLIM,
        caption,
    )


def draw_fig4(
    results: Results, protocol: str, out_dir: Path, stem: str = "fig4_imagenet", caption: str | None = None
) -> list[Path]:
    return save_figure(fig4(results, protocol, caption), out_dir, stem)


def draw_fig6(
    results: Results, protocol: str, out_dir: Path, stem: str = "fig6_cifar10", caption: str | None = None
) -> list[Path]:
    return save_figure(fig6(results, protocol, caption), out_dir, stem)


def fig1(results: Results, protocol: str, caption: str | None = None):
    """Fig. 1 (CIFAR-10): plain-20 and plain-56, training error left, test error right."""
    runs = results.runs[results.runs.arch == "plain"]
    scale, x_label = x_scale(results)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.3))
    for ax, split, title in zip(axes, ("train", "test"), ("training error (%)", "test error (%)")):
        for depth in (20, 56):
            curve = mean_curve(results, runs[runs.depth == depth], split)
            plot_with_range(ax, curve, scale, color=DEPTH_COLOURS[depth], linewidth=2, label=f"{depth}-layer")
        ax.set_title(title)
        _axes_style(ax, protocol, x_label)
        if ax.lines:
            ax.legend()
    _suptitle(fig, f"CIFAR-10, protocol '{protocol}'", caption, results)
    return fig


def draw_fig1(
    results: Results, protocol: str, out_dir: Path, stem: str = "fig1_cifar10", caption: str | None = None
) -> list[Path]:
    return save_figure(fig1(results, protocol, caption), out_dir, stem)


# Fig. 7 of the paper draws plain and residual nets of these depths
FIG7_DEPTHS = (20, 56, 110)


def fig7(results: Results, protocol: str, caption: str | None = None):
    """Fig. 7: std of the layer responses (3x3 layers, after BN, before ReLU/addition) on the
    test set; top: in the network's order, bottom: sorted by magnitude. One line per net
    (mean over its seeds): dashed plain, solid ResNet (option A), coloured by depth."""
    runs = compared(results.runs)
    if runs.depth.isin(FIG7_DEPTHS).any():
        runs = runs[runs.depth.isin(FIG7_DEPTHS)]
    responses = results.responses
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 7))
    without = []
    for (arch, depth), group in runs.groupby(["arch", "depth"]):
        label = f"{KIND_TITLES[arch]}-{depth}"
        of_net = responses[responses.run_id.isin(group.run_id)]
        if of_net.empty:
            without.append(label)
            continue
        std = of_net.groupby("layer")["std"].mean()
        style = {
            "color": DEPTH_COLOURS.get(int(depth)),
            "linestyle": "--" if arch == "plain" else "-",
            "linewidth": 1.2,
            "label": label,
        }
        top.plot(std.index, std.values, **style)
        bottom.plot(range(1, len(std) + 1), std.sort_values(ascending=False).values, **style)
    for ax, order in ((top, "original"), (bottom, "sorted by magnitude")):
        ax.set_xlabel(f"layer index ({order})")
        ax.set_ylabel("std")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8, ncol=2)
    note = f"no layer responses recorded for {', '.join(without)}" if without else None
    lines = [f"Fig. 7: std of layer responses, CIFAR-10 test set, protocol '{protocol}'"] + [
        text for text in (caption, note) if text
    ]
    fig.suptitle("\n".join(lines), fontsize=9)
    fig.tight_layout()
    return fig


def draw_fig7(
    results: Results, protocol: str, out_dir: Path, stem: str = "fig7_cifar10", caption: str | None = None
) -> list[Path]:
    return save_figure(fig7(results, protocol, caption), out_dir, stem)


def save_figure(fig, out_dir: Path, stem: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"]
    # TrueType (Type 42) fonts in the PDF, as journals ask, not matplotlib's default Type 3
    with plt.rc_context({"pdf.fonttype": 42}):
        for path in paths:
            # no creation date in the PDF: regenerating a figure from the same records gives the same file
            fig.savefig(path, dpi=150, metadata={"CreationDate": None} if path.suffix == ".pdf" else None)
    plt.close(fig)
    return paths
