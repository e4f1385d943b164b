"""System packages a test needs (SLURM, LaTeX), installed from Debian where missing: CI runs as
root on a fresh machine; elsewhere the test skips with the reason this returns."""

from __future__ import annotations

import os
import shutil
import subprocess


def install_packages(what: str, missing: list[str]) -> str | None:
    """``apt-get install`` the ``missing`` packages of ``what``; the reason it cannot, or None."""
    if not missing:
        return None
    if os.geteuid() != 0:
        return f"{what} is not installed ({', '.join(missing)} missing) and installing it needs root"
    if shutil.which("apt-get") is None:
        return f"{what} is not installed ({', '.join(missing)} missing) and there is no apt-get"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:  # a fresh machine may have no package lists yet
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, text=True)
        done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        return f"apt-get could not install {', '.join(missing)}: {done.stderr.strip()[-500:]}"
    return None
