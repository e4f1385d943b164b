"""Which W&B mode a run or the report uses: decided without ever prompting (a sweep on a
cluster node must not wait for a login). Imports nothing of Lightning or training, so the
report can use it."""

from __future__ import annotations

import netrc
import os
from urllib.parse import urlparse

from resdeg import ResdegError

MODES = ("auto", "online", "offline", "disabled")


def has_credentials() -> bool:
    """An API key in the environment, or a ~/.netrc entry for the W&B host (what `wandb login` writes)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname
    try:
        return netrc.netrc().authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def choose_mode(configured: str) -> str:
    """The config value wins, then WANDB_MODE, then online where credentials exist, else offline.

    Never prompts: a sweep on a cluster node must not wait for a login.
    """
    if configured not in MODES:
        raise ResdegError(f"unknown logger.mode {configured!r}: choose one of {', '.join(MODES)}")
    if configured != "auto":
        return configured
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    if env:
        return {"dryrun": "offline", "run": "online", "disable": "disabled"}.get(env, env)
    return "online" if has_credentials() else "offline"
