"""The run record: the one contract between training and the report.

    results/runs/<group>/<run_id>/
        summary.json          status and identity of the run, errors, parameters, wall time
        config.yaml           the fully resolved Hydra config
        history.csv           long format: iteration, split, metric, value
        layer_responses.csv   CIFAR-10, complete runs: layer, name, std (Fig. 7)
        signals.csv           per 3x3 layer through training: forward std, gradient norms (Section 4.1)

One concept per module: ``schema`` (the files, their fields and versions, readers),
``identity`` (what a run computes, hashed into its id), ``layout`` (where its files go),
``lock`` (one process per record), ``decision`` (skip, resume or start afresh), ``writer``
(the record written as the run goes), ``provenance`` (versions and git commit). Training,
the report and the W&B importer import from here; this package imports none of them.
"""

from resdeg.record.schema import (  # noqa: F401 - the record's public interface
    HISTORY_COLUMNS,
    IDENTITY_FIELDS,
    LAYER_RESPONSE_COLUMNS,
    REPORT_COLUMNS,
    SCHEMA_VERSION,
    SIGNAL_COLUMNS,
    STATUSES,
    history_csv,
    is_record,
    now_iso,
    parse_summary,
    read_history,
    read_signals,
    read_summary,
    summary_json,
    write_atomic,
)
