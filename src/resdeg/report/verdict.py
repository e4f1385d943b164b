"""The degradation verdict: does the deeper plain net train worse, and do residual nets avoid it?"""

from __future__ import annotations

import pandas as pd

from resdeg.report.figures import mean_curve
from resdeg.report.load import Results


def _compare(results: Results, kind: str, label: str) -> tuple[str, float | None]:
    runs = results.runs
    done = runs[(runs.arch == kind) & (runs.status == "complete") & ((runs.arch == "plain") | (runs.shortcut == "A"))]
    depths = sorted(done.depth.unique())
    if len(depths) < 2:
        return f"- {label}: fewer than two depths complete ({', '.join(map(str, depths)) or 'none'}); no verdict.", None
    shallow, deep = depths[0], depths[-1]
    finals = done.groupby("depth").final_train_error.mean()
    gap = finals[deep] - finals[shallow]
    a = mean_curve(results, done[done.depth == shallow], "train").set_index("iteration").value
    b = mean_curve(results, done[done.depth == deep], "train").set_index("iteration").value
    common = a.index.intersection(b.index)
    above = (b[common] > a[common])
    since = None
    if above.iloc[-1]:
        # the last iteration from which the deeper net stays above the shallower one
        flips = above[~above]
        since = common[0] if flips.empty else common[common > flips.index[-1]][0]
    order = ", ".join(f"{label}-{d}: {finals[d]:.1f}%" for d in depths)
    line = (
        f"- {label}: final training error {order}. {label}-{deep} is "
        f"{abs(gap):.1f} points {'above' if gap > 0 else 'below'} {label}-{shallow}"
        + (f", and above it at {int(above.sum())} of {len(common)} logged iterations (continuously from iteration {since})" if since is not None else "")
        + "."
    )
    return line, float(gap)


# the depths of each dataset's degradation sweep (Fig. 6 / Fig. 4)
SWEEP_DEPTHS = {"cifar10": (20, 32, 44, 56), "imagenet": (18, 34)}
DATASET_TITLES = {"cifar10": "CIFAR-10", "imagenet": "ImageNet"}


def degradation_verdict(results: Results, protocol: str, dataset: str = "cifar10") -> str:
    plain_line, plain_gap = _compare(results, "plain", "plain")
    resnet_line, resnet_gap = _compare(results, "residual", "ResNet")
    if plain_gap is None or resnet_gap is None:
        conclusion = "Not enough complete runs for a verdict."
    elif plain_gap > 0 and resnet_gap <= 0:
        conclusion = "Degradation reproduced: the deeper plain net has higher training error, the residual nets avoid it."
    elif plain_gap > 0:
        conclusion = (f"Degradation shows in the plain nets (+{plain_gap:.1f} points from shallowest to deepest); the "
                      f"residual nets shrink it to +{resnet_gap:.1f} points but do not remove it in these runs.")
    else:
        conclusion = "No degradation: the deeper plain net does not have higher training error in these runs."
    missing = _missing(results, SWEEP_DEPTHS.get(dataset, ()))
    return "\n".join([
        f"# Degradation verdict ({DATASET_TITLES.get(dataset, dataset)}, protocol '{protocol}')", "", plain_line,
        resnet_line, "", f"**{conclusion}**",
        *([""] + [f"Missing from the sweep: {missing}."] if missing else []),
    ]) + "\n"


def _missing(results: Results, depths) -> str:
    have = {(r.arch, int(r.depth)) for r in results.runs.itertuples() if r.status == "complete"}
    want = [(kind, d) for kind in ("plain", "residual") for d in depths]
    return ", ".join(f"{'plain' if k == 'plain' else 'ResNet'}-{d}" for k, d in want if (k, d) not in have)
