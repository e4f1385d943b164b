"""Which runs the report draws together.

A figure, table or verdict draws one *set*: the complete runs of one dataset, one protocol
and one protocol setting. The setting is the record's ``protocol_hash``, a hash of the
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
        """One line naming the runs drawn, for figure captions and table notes."""
        runs = self.results.runs
        seeds = sorted(runs.seed.dropna().astype(int).unique())
        iterations = sorted(runs.iterations.dropna().astype(int).unique())
        setting = runs.protocol_hash.dropna().unique()
        return (f"{len(runs)} complete runs in this set"
                + (f", {'/'.join(map(str, iterations))} iterations" if iterations else "")
                + (f", seeds {','.join(map(str, seeds))}" if seeds else "")
                + (f", setting {setting[0]}" if len(setting) == 1 else ""))


def report_sets(results: Results, dataset: str, protocol: str | None = None) -> list[ReportSet]:
    """The sets of ``dataset`` (one protocol name, or all), the main setting of each name first."""
    runs = results.runs
    of_dataset = runs[runs.dataset == dataset]
    names = [protocol] if protocol else sorted(of_dataset.protocol.dropna().unique())
    sets = []
    for name in names:
        of_protocol = of_dataset[of_dataset.protocol == name]
        unfinished = of_protocol[of_protocol.status != "complete"]
        complete = of_protocol[of_protocol.status == "complete"]
        notes = [f"left out, not complete: {r.run_id} ({r.status} at iteration {r.iteration})"
                 for r in unfinished.itertuples()]
        settings = complete.protocol_hash.fillna("").value_counts(sort=False)
        # the setting with the most complete runs keeps the protocol's name; ties go to the hash's order
        order = sorted(settings.index, key=lambda h: (-settings[h], h))
        for rank, setting in enumerate(order):
            label = name if rank == 0 else f"{name}_{setting}"
            members = complete.protocol_hash.fillna("") == setting
            subset = results.where(runs.index.isin(complete[members].index))
            set_notes = list(notes) if rank == 0 else []
            if len(order) > 1:
                others = ", ".join(f"{name}_{h}" for h in order if h != setting)
                set_notes.append(f"runs of protocol '{name}' with other settings are drawn apart, as {others}")
            sets.append(ReportSet(dataset, name, label, subset, set_notes))
    return sets
