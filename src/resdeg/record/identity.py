"""A run's identity: what it computes, hashed into its run id.

Two runs with equal identity are the same experiment: the second finds the first's complete
record and is skipped. So everything that changes what a run computes must be in the
identity, and nothing else: the data config enters whole, less a deny-list of keys that only
say where the data lives or how it is loaded (a new key that changes the computation is in
by default, never silently shared).
"""

from __future__ import annotations

import hashlib
import json

from omegaconf import DictConfig, OmegaConf

# Keys of the data config that do not change what a run computes: where the files are, how
# they are read (the tensor and torchvision pipelines give the same distribution of batches),
# the evaluation batch size (sums, not means, are reduced) and the seed (already the run's).
NOT_IDENTITY_DATA_KEYS = frozenset(
    {"_target_", "root", "download", "cache_dir", "loader", "on_device", "num_workers", "eval_batch_size", "seed"}
)


def is_setting_key(key: str) -> bool:
    """Whether a config key (as overridden on the command line) changes a run's protocol
    setting (``protocol_hash``) beyond what the protocol's name says (the quick family's
    iterations are in the name: quick-4000)."""
    key = key.lstrip("+~")
    return (
        key == "trainer.precision"
        or (key.startswith("protocol.") and key != "protocol.iterations")
        or (key.startswith("data.") and key.split(".")[1] not in NOT_IDENTITY_DATA_KEYS)
    )


def run_name(arch: str, depth: int, shortcut: str | None) -> str:
    """plain-56, resnet-56-A: how runs are named in records, figures and W&B."""
    return f"plain-{depth}" if arch == "plain" else f"resnet-{depth}-{shortcut}"


def run_identity(cfg: DictConfig) -> dict:
    """The identity fields of the run record (resdeg.record.schema.IDENTITY_FIELDS)."""
    from resdeg.models.shortcuts import chosen_option

    model = OmegaConf.to_container(cfg.model, resolve=True)
    # ``shortcut: paper`` is the option the paper chose for this net: the run is that option's run
    model["shortcut"] = chosen_option(model["shortcut"], cfg.data.name, model["depth"])
    data = OmegaConf.to_container(cfg.data, resolve=True)
    fingerprint = {
        "model": model,
        "protocol": OmegaConf.to_container(cfg.protocol, resolve=True),
        "data": {key: value for key, value in data.items() if key not in NOT_IDENTITY_DATA_KEYS},
        "seed": cfg.seed,
        # of the trainer's settings only the arithmetic changes the computation
        "precision": str(cfg.trainer.get("precision")),
    }
    digest = _hash(fingerprint)
    # what all nets of one figure share (protocol, data, precision): the report never draws
    # runs of different settings in one figure, even under one protocol name
    setting = {key: value for key, value in fingerprint.items() if key not in ("model", "seed")}
    setting["protocol"] = shared_protocol(setting["protocol"])
    arch, depth = model["arch"], model["depth"]
    shortcut = model["shortcut"] if arch == "residual" else None  # a plain net has no shortcut
    return {
        "run_id": f"{run_name(arch, depth, shortcut)}_seed{cfg.seed}_{digest}",
        "name": run_name(arch, depth, shortcut),
        "group": f"{cfg.data.name}-{cfg.protocol.name}",
        "dataset": cfg.data.name,
        "arch": arch,
        "depth": int(depth),
        "shortcut": shortcut,
        "protocol": cfg.protocol.name,
        # runs of one protocol at several budgets (quick-500, quick-1000...) share a family
        "protocol_family": cfg.protocol.get("family", cfg.protocol.name),
        "seed": int(cfg.seed),
        "config_hash": digest,
        "protocol_hash": _hash(setting),
    }


# the keys of ResNet-110's warm-up, the one schedule setting the paper varies within a figure
PER_NET_WARMUP_KEYS = ("warmup_lr", "warmup_error_below", "warmup_check_every")


def shared_protocol(protocol: dict) -> dict:
    """The protocol as the nets of one figure share it. The paper trains ResNet-110 with a
    warm-up the other nets do not have ("we use 0.01 to warm up the training until the
    training error is below 80%") and draws it beside them in Fig. 6, so a protocol with an
    ``until_error`` warm-up shares the setting of its family's protocol without one
    (cifar_paper_warmup that of cifar_paper). Any other difference is a different setting."""
    schedule = protocol.get("schedule") or {}
    if schedule.get("warmup") != "until_error":
        return protocol
    shared = {key: value for key, value in protocol.items() if key != "family"}
    shared["name"] = protocol.get("family", protocol.get("name"))
    shared["schedule"] = {**{k: v for k, v in schedule.items() if k not in PER_NET_WARMUP_KEYS}, "warmup": "none"}
    return shared


def _hash(fingerprint: dict) -> str:
    return hashlib.sha1(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:8]
