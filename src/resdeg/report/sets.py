"""Which runs the report draws together.

A figure, table or verdict draws one *set*: the complete runs of one dataset, one protocol
family and one protocol setting. The setting is the record's ``protocol_hash``, a hash of the
resolved protocol, data and precision values, i.e. everything a sweep's nets share except
the net and the seed. So

- a killed or still-running run's partial curve is never drawn or averaged in;
- two runs of one net under one protocol name but different settings (a 30-iteration debug
  run beside the sweep's run, a changed learning rate) are never merged: the setting with
  the most complete runs is drawn under the protocol's name, any other under
  ``<protocol>_<hash>``, and the report says so;
- seeds of one net (same setting, different ``seed``) are drawn together, as a mean with
  the seed range.

Records written before ``protocol_hash`` existed have none; those of one protocol name form
one set, as they did.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from resdeg.report.load import Results


@dataclass
class ReportSet:
    dataset: str
    protocol: str  # the protocol's name, as the runs record it
    label: str  # names the set's files: the protocol's name, or <name>_<hash> for a second setting
    results: Results  # complete runs of this set only
    notes: list[str] = field(default_factory=list)  # what was left out, and why

    @property
    def description(self) -> str:
        """One line naming the runs drawn, for figure captions and table captions: no hash (the
        set's files carry its label; the verdict names the setting)."""
        runs = self.results.runs
        seeds = sorted(runs.seed.dropna().astype(int).unique())
        iterations = sorted(runs.iterations.dropna().astype(int).unique())
        return (
            f"{len(runs)} complete runs in this set"
            + (f", {'/'.join(map(str, iterations))} iterations" if iterations else "")
            + (f", seeds {','.join(map(str, seeds))}" if seeds else "")
        )

    @property
    def setting(self) -> str | None:
        """The set's protocol setting (the records' ``protocol_hash``), where it has one."""
        setting = self.results.runs.protocol_hash.dropna().unique()
        return str(setting[0]) if len(setting) == 1 else None


def report_sets(results: Results, dataset: str, protocol: str | None = None) -> list[ReportSet]:
    """The sets of ``dataset`` (those drawn under one protocol name, or all), largest first.

    A set is one ``protocol_family`` and one ``protocol_hash``. The protocols of one family
    differ only where the paper lets them differ between nets of one figure: ResNet-110's
    warm-up (``cifar_paper_warmup``, family ``paper``) has the setting of ``cifar_paper``
    (see resdeg.record.identity), so it is drawn beside ResNet-20 to 56 as in Fig. 6. A set is
    named by the protocol most of its runs have; a second set that would take the same name
    is named ``<protocol>_<hash>``.
    """
    runs = results.runs
    of_dataset = runs[runs.dataset == dataset]
    family, setting = of_dataset.protocol_family, of_dataset.protocol_hash
    complete = of_dataset.status == "complete"
    keys = pd.DataFrame({"family": family, "setting": setting})[complete].value_counts(sort=False)
    # the setting with the most complete runs keeps the protocol's name; ties go to the hash's order
    order = sorted(keys.index, key=lambda key: (-keys[key], key))
    sets, taken = [], {}
    for key in order:
        members = complete & (family == key[0]) & (setting == key[1])
        name = of_dataset[members].protocol.value_counts().index[0]
        label = name if name not in taken else f"{name}_{key[1]}"
        taken.setdefault(name, []).append(label)
        subset = results.where(runs.index.isin(of_dataset[members].index))
        sets.append(ReportSet(dataset, name, label, subset, []))
    for s in sets:
        # runs not complete are named in the notes of the main set of their protocol name
        unfinished = of_dataset[~complete & (of_dataset.protocol.isin(s.results.runs.protocol.unique()))]
        if s.label == s.protocol:
            s.notes += [
                f"left out, not complete: {r.run_id} ({r.status}, history to iteration {r.iteration})"
                for r in unfinished.itertuples()
            ]
        if len(taken[s.protocol]) > 1:
            others = ", ".join(label for label in taken[s.protocol] if label != s.label)
            s.notes.append(f"runs of protocol '{s.protocol}' with other settings are drawn apart, as {others}")
    if protocol:
        sets = [s for s in sets if s.protocol == protocol]
    return sorted(sets, key=lambda s: (s.protocol, s.label != s.protocol, s.label))
