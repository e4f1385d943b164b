"""The degradation verdict: does the deeper plain net train worse, and do residual nets of the
same depths avoid it? ResNets deeper than every plain net of the set are reported beside it."""

from __future__ import annotations

import pandas as pd

from resdeg.record.schema import did_not_train
from resdeg.report.figures import mean_curve
from resdeg.report.load import Results, compared
from resdeg.report.signals import signals_verdict


def _finals(done: pd.DataFrame) -> pd.DataFrame:
    """Final training error per depth: mean, min, max and the number of seeds."""
    return done.groupby("depth").final_train_error.agg(["mean", "min", "max", "count"])


def seed_spread(*errors: pd.Series) -> float | None:
    """The seed spread of a comparison between nets: the larger range (max - min) of the
    nets' errors over their seeds; None (unknown) when any net has a single seed. The verdict
    and the budget study both weigh a gap against it."""
    if any(len(e) < 2 for e in errors):
        return None
    return float(max(e.max() - e.min() for e in errors))


def _noise_words(gap: float, spread: float | None, one_seed: list[str]) -> str:
    """How the gap compares with the seed spread; ``one_seed`` names the compared nets trained
    with a single seed (the spread is unknown when any is)."""
    if spread is None:
        if len(one_seed) == 1:  # the other net has seeds: say which net lacks them
            return f"{one_seed[0]} has one seed, so the seed noise of this gap is unknown"
        return "one seed per net, so the seed noise is unknown"
    if abs(gap) > spread:
        return f"the gap exceeds the spread across seeds ({spread:.1f} points)"
    return f"the gap is within the spread across seeds ({spread:.1f} points)"


def residual_half(gap: float, spread: float | None, deeper_worse: bool) -> str:
    """Which residual half the ResNets show, from the gap deepest minus shallowest, its seed
    spread and whether any deeper ResNet is above a shallower one beyond the spread:

    - ``better``: the paper's claim, "the 34-layer ResNet is better than the 18-layer ResNet"
      (Section 4.1; Fig. 6, middle): the deepest is below the shallowest by more than the spread;
    - ``not worse``: no deeper ResNet above a shallower one beyond the spread, but the deepest
      not below the shallowest beyond it (the weak sense; with one seed, the spread is unknown
      and "better" cannot be told from noise);
    - ``worse``: a deeper ResNet above a shallower one beyond the spread.
    """
    if deeper_worse:
        return "worse"
    if spread is not None and -gap > spread:
        return "better"
    return "not worse"


def _error_text(finals: pd.DataFrame, depth) -> str:
    row = finals.loc[depth]
    if row["count"] < 2:
        return f"{row['mean']:.1f}%"
    return f"{row['mean']:.1f}% (seeds {row['min']:.1f}-{row['max']:.1f}, n={int(row['count'])})"


def _complete(results: Results, kind: str) -> pd.DataFrame:
    runs = results.runs
    return compared(runs[(runs.arch == kind) & (runs.status == "complete")])


def matched_depths(results: Results) -> list[int] | None:
    """The depths trained both as plain and as residual nets. Degradation is a claim about nets
    of the same depth ("plain and residual nets of the same depth, width and parameters"): the
    verdict compares the two kinds over these depths. None (all depths) when fewer than two match."""
    both = sorted(set(_complete(results, "plain").depth) & set(_complete(results, "residual").depth))
    return both if len(both) >= 2 else None


def _compare(
    results: Results, kind: str, label: str, only: list[int] | None = None
) -> tuple[str, float | None, float | None, list[str]]:
    """(line, gap deepest minus shallowest, its seed spread, deeper nets above a shallower one beyond
    the spread), over the depths ``only`` (all complete depths when None)."""
    done = _complete(results, kind)
    if only is not None:
        done = done[done.depth.isin(only)]
    depths = sorted(done.depth.unique())
    if len(depths) < 2:
        return (
            f"- {label}: fewer than two depths complete ({', '.join(map(str, depths)) or 'none'}); no verdict.",
            None,
            None,
            [],
        )
    shallow, deep = depths[0], depths[-1]
    finals = _finals(done)
    gap = finals.loc[deep, "mean"] - finals.loc[shallow, "mean"]
    errors = {d: done[done.depth == d].final_train_error.astype(float) for d in depths}
    spread = seed_spread(errors[shallow], errors[deep])
    a = mean_curve(results, done[done.depth == shallow], "train").set_index("iteration").value
    b = mean_curve(results, done[done.depth == deep], "train").set_index("iteration").value
    common = a.index.intersection(b.index)
    above = b[common] > a[common]
    since = None
    if len(common) and above.iloc[-1]:
        # the last iteration from which the deeper net stays above the shallower one
        flips = above[~above]
        since = common[0] if flips.empty else common[common > flips.index[-1]][0]
    # every deeper net against every shallower one: above it by more than the seed spread?
    worse = []
    for i, shallower in enumerate(depths):
        for deeper in depths[i + 1 :]:
            pair_gap = finals.loc[deeper, "mean"] - finals.loc[shallower, "mean"]
            if pair_gap > (seed_spread(errors[shallower], errors[deeper]) or 0.0):
                worse.append(f"{label}-{deeper} {pair_gap:+.1f} vs {label}-{shallower}")
    order = ", ".join(f"{label}-{d}: {_error_text(finals, d)}" for d in depths)
    one_seed = [f"{label}-{d}" for d in (shallow, deep) if len(errors[d]) < 2]
    line = (
        f"- {label}: final training error {order}. {label}-{deep} is "
        f"{abs(gap):.1f} points {'above' if gap > 0 else 'below'} {label}-{shallow}"
        + (
            f", and above it at {int(above.sum())} of {len(common)} logged iterations "
            f"(continuously from iteration {since})"
            if since is not None
            else ""
        )
        + f"; {_noise_words(gap, spread, one_seed)}."
    )
    return line, float(gap), spread, worse


# the depths of each dataset's degradation sweep (Fig. 6 / Fig. 4)
SWEEP_DEPTHS = {"cifar10": (20, 32, 44, 56), "imagenet": (18, 34)}
DATASET_TITLES = {"cifar10": "CIFAR-10", "imagenet": "ImageNet"}


def _beyond(results: Results, matched: list[int] | None) -> str | None:
    """A line for the ResNets deeper than any plain net of the set (ResNet-110 and 1202 beside
    the 20-56 sweep, as in the paper's middle and right panels): not part of the plain/residual
    comparison, since no plain net of their depth was trained here, but never left unsaid."""
    if matched is None:
        return None
    done = _complete(results, "residual")
    deeper = sorted(d for d in done.depth.unique() if d > max(matched))
    if not deeper:
        return None
    finals = _finals(done)
    errors = {d: done[done.depth == d].final_train_error.astype(float) for d in finals.index}
    base = max(matched)
    parts = []
    for depth in deeper:
        if did_not_train(errors[depth]):  # at chance: no depth result, said so rather than counted
            parts.append(f"ResNet-{depth}: did not train ({_error_text(finals, depth)}, at chance)")
            continue
        gap = finals.loc[depth, "mean"] - finals.loc[base, "mean"]
        noise = _noise_words(
            gap, seed_spread(errors[base], errors[depth]), [f"ResNet-{d}" for d in (base, depth) if len(errors[d]) < 2]
        )
        parts.append(
            f"ResNet-{depth}: {_error_text(finals, depth)}, {abs(gap):.1f} points "
            f"{'above' if gap > 0 else 'below'} ResNet-{base}; {noise}"
        )
    return (
        "- ResNets deeper than the plain nets (no plain net of their depth in this set, so outside the verdict "
        "below; the paper's Fig. 6 has ResNet-110 lowest at 64k iterations): " + "; ".join(parts) + "."
    )


def degradation_verdict(results: Results, protocol: str, dataset: str = "cifar10") -> str:
    matched = matched_depths(results)
    plain_line, plain_gap, plain_spread, _ = _compare(results, "plain", "plain", matched)
    resnet_line, resnet_gap, resnet_spread, resnet_worse = _compare(results, "residual", "ResNet", matched)
    beyond = _beyond(results, matched)
    notes = []
    if plain_gap is None or resnet_gap is None:
        conclusion = "Not enough complete runs for a verdict."
    elif plain_gap > 0 and plain_spread is not None and plain_gap <= plain_spread:
        conclusion = (
            f"Not shown beyond noise: the deeper plain net is {plain_gap:.1f} points above the shallowest, "
            f"within the spread across seeds ({plain_spread:.1f} points)."
        )
    elif plain_gap > 0 and residual_half(resnet_gap, resnet_spread, bool(resnet_worse)) == "better":
        conclusion = (
            f"Degradation reproduced, both halves: the deeper plain net has higher training error "
            f"(+{plain_gap:.1f} points), and the deeper ResNet trains better, {-resnet_gap:.1f} points below "
            f"the shallowest, beyond the spread across seeds ({resnet_spread:.1f} points)."
        )
    elif plain_gap > 0 and not resnet_worse:
        spread = (
            f"within the spread across seeds ({resnet_spread:.1f} points)"
            if resnet_spread is not None
            else "and with one seed the seed noise is unknown"
        )
        conclusion = (
            f"Degradation reproduced in the plain nets (+{plain_gap:.1f} points); the residual half only in the weak "
            f"sense: no deeper ResNet is worse beyond the seed spread, but the deepest is not better beyond it "
            f"({resnet_gap:+.1f} points against the shallowest, {spread})."
        )
    elif plain_gap > 0:
        conclusion = (
            f"Degradation shows in the plain nets (+{plain_gap:.1f} points from shallowest to deepest); the "
            f"residual nets shrink it to {resnet_gap:+.1f} points but do not remove it in these runs."
        )
        notes.append(
            f"Deeper ResNets above a shallower one (by more than the seed spread, where it is known): "
            f"{'; '.join(resnet_worse)}."
        )
    else:
        conclusion = "No degradation: the deeper plain net does not have higher training error in these runs."
    if plain_gap is not None and (plain_spread is None or resnet_spread is None):
        notes.append(
            "Some nets have one seed only: the seed noise of those comparisons is unknown (`SEEDS=0,1,2` measures it)."
        )
    missing = _missing(results, SWEEP_DEPTHS.get(dataset, ()))
    signals = signals_verdict(results)
    return (
        "\n".join(
            [
                f"# Degradation verdict ({DATASET_TITLES.get(dataset, dataset)}, protocol '{protocol}')",
                "",
                plain_line,
                resnet_line,
                *([beyond] if beyond else []),
                *([signals] if signals else []),
                "",
                f"**{conclusion}**",
                *([""] + notes if notes else []),
                *([""] + [f"Missing from the sweep: {missing}."] if missing else []),
            ]
        )
        + "\n"
    )


def _missing(results: Results, depths) -> str:
    have = {(r.arch, int(r.depth)) for r in results.runs.itertuples() if r.status == "complete"}
    want = [(kind, d) for kind in ("plain", "residual") for d in depths]
    return ", ".join(f"{'plain' if k == 'plain' else 'ResNet'}-{d}" for k, d in want if (k, d) not in have)
