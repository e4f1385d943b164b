"""Section 4.1's argument, from the records: "neither forward nor backward signals vanish".

"These plain networks are trained with BN, which ensures forward propagated signals to have
non-zero variances. We also verify that the backward propagated gradients exhibit healthy
norms with BN." The paper shows no figure for it; this one is drawn from each record's
signals.csv (resdeg.record.schema.SIGNAL_COLUMNS): per 3x3 layer, on one fixed training
batch, the norm of the loss gradient with respect to the layer's response (top row) and the
response's std (bottom row, from 0), at iteration 0, early, in the middle and at the end of
training; plain-20/56 dashed and ResNet-20/56 solid, coloured by depth as in Fig. 6; the
gradients on a log scale.

The verdict's line: the gradient at the first 3x3 layer against the gradient at the last
(``first_to_last``), for each net at each measured iteration. A backward signal that vanished
on its way down the net would leave the first layer's gradient orders of magnitude below the
last one's; the line calls a net's gradients vanishing when the ratio falls below
``VANISHING_RATIO`` at any measured iteration, exploding when it rises above its inverse (not
"healthy norms" either: deep plain nets with BN are known to start so, Yang et al. 2019, "A
mean field theory of batch normalization"), and a forward signal vanished when a response's
std falls below ``VANISHED_STD``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from resdeg.report.figures import DEPTH_COLOURS, KIND_TITLES, save_figure
from resdeg.report.load import Results, compared

# the nets of the figure: the shallowest and deepest of the degradation sweep
SIGNAL_DEPTHS = (20, 56)
# two orders of magnitude lost between the last 3x3 layer and the first: vanishing
VANISHING_RATIO = 1e-2
# a response with this little spread carries (almost) no signal forward (BN's output has std ~1)
VANISHED_STD = 1e-3


def _nets(results: Results) -> list[tuple[str, int, pd.DataFrame]]:
    """(arch, depth, the signals averaged over the net's seeds by iteration and layer) for each
    net of SIGNAL_DEPTHS with recorded signals, plain first."""
    runs = compared(results.runs[results.runs.status == "complete"])
    runs = runs[runs.depth.isin(SIGNAL_DEPTHS)]
    nets = []
    for (arch, depth), group in runs.groupby(["arch", "depth"]):
        of_net = results.signals[results.signals.run_id.isin(group.run_id)]
        if len(of_net):
            mean = of_net.groupby(["iteration", "layer"])[
                ["forward_std", "output_grad_norm", "weight_grad_norm"]
            ].mean()
            nets.append((arch, int(depth), mean.reset_index()))
    return sorted(nets, key=lambda n: (n[0] != "plain", n[1]))


def shown_iterations(iterations) -> list[int]:
    """Iteration 0, early (the first measurement after 0), the middle and the end of training."""
    iterations = sorted(set(int(i) for i in iterations))
    if len(iterations) <= 4:
        return iterations
    end = iterations[-1]
    middle = min(iterations, key=lambda i: abs(i - end / 2))
    return sorted({iterations[0], iterations[1], middle, end})


def signals_figure(results: Results, protocol: str, caption: str | None = None):
    nets = _nets(results)
    common = set.intersection(*(set(signals.iteration) for _, _, signals in nets)) if nets else set()
    columns = shown_iterations(common) or [0]
    fig, axes = plt.subplots(2, len(columns), figsize=(3.2 * len(columns), 6), sharey="row", squeeze=False)
    for column, iteration in enumerate(columns):
        top, bottom = axes[0][column], axes[1][column]
        for arch, depth, signals in nets:
            at = signals[signals.iteration == iteration]
            style = {
                "color": DEPTH_COLOURS.get(depth),
                "linestyle": "--" if arch == "plain" else "-",
                "linewidth": 1.2,
                "label": f"{KIND_TITLES[arch]}-{depth}",
            }
            top.plot(at.layer, at.output_grad_norm, **style)
            bottom.plot(at.layer, at.forward_std, **style)
        top.set_title(f"iteration {iteration}", fontsize=9)
        top.set_yscale("log")  # gradient norms span orders of magnitude
        bottom.set_ylim(bottom=0)  # a std near 1 against 0: "non-zero variances" at a glance
        for ax in (top, bottom):
            ax.grid(alpha=0.3, which="both")
        bottom.set_xlabel("3x3 layer index")
    axes[0][0].set_ylabel("gradient norm at the response")
    axes[1][0].set_ylabel("std of the response")
    if axes[0][-1].lines:
        axes[0][-1].legend(fontsize=8)
    lines = [f"Section 4.1: backward and forward signals on a fixed training batch, CIFAR-10, protocol '{protocol}'"]
    if caption:
        lines.append(caption)
    fig.suptitle("\n".join(lines), fontsize=9)
    fig.tight_layout()
    return fig


def draw_signals(results: Results, protocol: str, out_dir: Path, stem: str, caption: str | None = None) -> list[Path]:
    return save_figure(signals_figure(results, protocol, caption), out_dir, stem)


def first_to_last(signals: pd.DataFrame) -> pd.Series:
    """By iteration: the first 3x3 layer's gradient norm over the last one's."""
    by_layer = signals.pivot(index="iteration", columns="layer", values="output_grad_norm")
    return by_layer[by_layer.columns.min()] / by_layer[by_layer.columns.max()]


def signals_verdict(results: Results) -> str | None:
    """The verdict's Section 4.1 line, or None when no net of SIGNAL_DEPTHS recorded signals."""
    nets = _nets(results)
    if not nets:
        return None
    parts, vanishing, exploding, vanished = [], [], [], []
    for arch, depth, signals in nets:
        label = f"{KIND_TITLES[arch]}-{depth}"
        ratio = first_to_last(signals)
        end = int(signals.iteration.max())
        smallest_std = float(signals.forward_std.min())
        parts.append(
            f"{label} {ratio.loc[end]:.2g} at its end ({ratio.min():.2g} to {ratio.max():.2g} over training), "
            f"smallest response std {smallest_std:.2g}"
        )
        if ratio.min() < VANISHING_RATIO:
            vanishing.append(label)
        too_large = ratio[ratio > 1 / VANISHING_RATIO]
        if len(too_large):
            exploding.append(
                f"{label} (up to {too_large.max():.2g}, at iteration{'s' if len(too_large) > 1 else ''} "
                f"{', '.join(str(int(i)) for i in too_large.index)})"
            )
        if smallest_std < VANISHED_STD:
            vanished.append(label)
    backward = (
        f"the gradients of {', '.join(vanishing)} vanish (first-to-last ratio below {VANISHING_RATIO:g}), "
        "which contradicts the paper"
        if vanishing
        else f"no net's gradients vanish (every first-to-last ratio above {VANISHING_RATIO:g})"
    )
    forward = (
        f"the forward signals of {', '.join(vanished)} vanish (a response std below {VANISHED_STD:g}), "
        "which contradicts the paper"
        if vanished
        else "every response keeps a non-zero variance"
    )
    agrees = "as the paper says" if not (vanishing or vanished) else "not as the paper says"
    explodes = (
        f" The gradients do grow more than {1 / VANISHING_RATIO:g}-fold from the last 3x3 layer to the first in "
        f'{"; ".join(exploding)}: exploding rather than vanishing, where the paper says "healthy norms".'
        if exploding
        else ""
    )
    return (
        "- Signals (Section 4.1, first 3x3 layer's gradient norm over the last one's, on a fixed training batch): "
        + "; ".join(parts)
        + f". So {backward}, and {forward}: {agrees}."
        + explodes
    )
