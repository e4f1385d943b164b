"""What trained a run: the software versions and the code's git commit, in every record."""

from __future__ import annotations

import platform
import subprocess
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[3]


def software_versions() -> dict[str, str]:
    import lightning
    import torch

    import resdeg

    return {
        "resdeg": resdeg.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "lightning": lightning.__version__,
    }


def code_version(project: Path = PROJECT) -> dict:
    """{"commit": <sha>, "dirty": whether the code (src/, conf/, pyproject.toml) differs from
    it}, or {"commit": None} where the package does not run from a git checkout (an installed
    wheel). Records and figures under results/ do not make the code dirty."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(project), *args], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", "src", "conf", "pyproject.toml"))
    except (OSError, subprocess.SubprocessError):
        return {"commit": None}
    return {"commit": commit, "dirty": dirty}
