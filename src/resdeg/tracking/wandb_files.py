"""Reading what W&B wrote offline: the ``offline-run-*/run-*.wandb`` files.

wandb 0.31 ships no Python reader for them. The format: a 7-byte header (``:W&B``, a
2-byte magic, a 1-byte version), then blocks of 32 KiB in the LevelDB log format: each
record chunk is behind a 7-byte header (crc32: 4 bytes, length: 2, type: 1 = full,
2 = first, 3 = middle, 4 = last) and a chunk never crosses a block boundary. The
reassembled records are ``wandb_internal_pb2.Record`` protobufs: ``run`` (name, group, job
type, tags, config), ``history`` (one logged row), ``summary``, ``metric`` (define_metric),
``exit``.

Used by the tests (what did W&B really receive?) and by ``resdeg.tracking.wandb_import``.
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path

BLOCK = 32 * 1024
FILE_HEADER = 7
CHUNK_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def read_records(path: str | Path):
    """The protobuf records of one .wandb file, in order."""
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B run file (header {data[:4]!r})")
    pos, pending = FILE_HEADER, b""
    while pos + CHUNK_HEADER <= len(data):
        room = BLOCK - pos % BLOCK
        if room < CHUNK_HEADER:  # the block's tail is padding
            pos += room
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + CHUNK_HEADER])
        chunk = data[pos + CHUNK_HEADER : pos + CHUNK_HEADER + length]
        if len(chunk) < length:  # the file's end is still being written
            return
        pos += CHUNK_HEADER + length
        if kind == 0 and length == 0:  # zero padding at the end of a block
            pos += BLOCK - pos % BLOCK if pos % BLOCK else 0
            continue
        if kind in (FULL, FIRST):
            pending = chunk
        else:
            pending += chunk
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record
            pending = b""


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


@dataclass
class OfflineRun:
    """What one offline W&B run holds, decoded."""

    path: Path
    id: str = ""
    name: str = ""
    group: str = ""
    job_type: str = ""
    project: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    # define_metric: metric name (or glob) -> {"step_metric": ..., "summary": [...]}
    metrics: dict = field(default_factory=dict)
    exit_code: int | None = None
    # when W&B started this run (a resumed run is a new file with its own start): the order of runs
    started: float = 0.0


def read_offline_run(path: str | Path) -> OfflineRun:
    run = OfflineRun(Path(path))
    for record in read_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.id, run.name, run.group, run.project = r.run_id, r.display_name, r.run_group, r.project
            run.job_type = r.job_type
            run.tags = list(r.tags)
            run.started = r.start_time.seconds + r.start_time.nanos / 1e9
            for item in r.config.update:
                run.config[_key(item)] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                run.config[_key(item)] = json.loads(item.value_json)
        elif kind == "history":
            run.history.append({_key(item): json.loads(item.value_json) for item in record.history.item})
        elif kind == "summary":
            for item in record.summary.update:
                run.summary[_key(item)] = json.loads(item.value_json)
        elif kind == "metric":
            m = record.metric
            summary = [
                name
                for name in ("min", "max", "mean", "best", "last", "copy", "first")
                if getattr(m.summary, name, False)
            ]
            run.metrics[m.name or m.glob_name] = {"step_metric": m.step_metric, "summary": summary}
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
    # W&B nests each config value as {"value": ...}
    run.config = {k: v["value"] if isinstance(v, dict) and set(v) == {"value"} else v for k, v in run.config.items()}
    run.config.pop("_wandb", None)
    return run


def offline_runs(folder: str | Path, wait_s: float = 0.0) -> list[OfflineRun]:
    """Every offline run under ``folder`` (e.g. experiments/wandb), oldest first.

    By the start time W&B recorded, not by folder name: the name holds the start to the
    second and then the run id, so runs started within one second would sort by their ids.

    W&B's writer (wandb-core, a process of its own) may still be writing a run's file when
    ``run.finish()`` has returned, or the process that ran it has exited: ``wait_s`` reads
    again until every run has its exit record, for at most that many seconds."""
    deadline = time.monotonic() + wait_s
    while True:
        runs = [read_offline_run(p) for p in Path(folder).rglob("offline-run-*/run-*.wandb")]
        if all(run.exit_code is not None for run in runs) or time.monotonic() >= deadline:
            return sorted(runs, key=lambda run: (run.started, str(run.path)))
        time.sleep(0.1)
