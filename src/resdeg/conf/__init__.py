"""The Hydra configs of resdeg, shipped inside the package (a package so that Hydra finds them in
an installed wheel; conf/ at the repository root points here)."""

from pathlib import Path

CONFIG_DIR = Path(__file__).parent
