"""Every command the README shows is valid as written on a fresh clone: each `make` target
exists and expands (`make -n`), each training command composes its config (`--cfg job`:
every override names a real key), every other module entry point starts (`--help`).

Running each command for real is what the other tests do at tiny sizes (sweeps, train,
report, import, bench); this one catches a README that drifts from the code."""

import re
import shlex
import subprocess
import sys

import pytest

from conftest import REPO

README = (REPO / "README.md").read_text()


def readme_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", README, re.S)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    inline = [" ".join(c.split()) for c in re.findall(r"`((?:make|\.venv/bin/python -m) [^`]+)`", README)]
    commands = [c for c in lines + inline if c.startswith(("make ", ".venv/bin/python -m ")) and "*" not in c]
    return sorted(set(commands))


def test_the_readme_shows_the_main_commands():
    commands = readme_commands()
    for expected in ("make sweep-degradation", "make sweep-deep SEEDS=0,1,2,3,4", "make test", "make figures tables"):
        assert expected in commands


@pytest.mark.parametrize("command", readme_commands())
def test_a_readme_command_is_valid_as_written(command):
    words = shlex.split(command.replace("...", "x"))
    if words[0] == "make":
        result = subprocess.run(["make", "-n", *words[1:]], cwd=REPO, capture_output=True, text=True, timeout=120)
    else:
        module = words[2]
        check = ["--cfg", "job"] if module == "resdeg.train" else ["--help"]
        args = [w for w in words[3:] if w not in ("--cfg", "job")] if module == "resdeg.train" else []
        result = subprocess.run(
            [sys.executable, "-m", module, *args, *check], cwd=REPO, capture_output=True, text=True, timeout=300
        )
    assert result.returncode == 0, f"{command}\n{result.stdout[-1500:]}\n{result.stderr[-1500:]}"
