"""The suite's own arrangement (tests/conftest.py): the tests of the session's one SLURM cluster
run on one pytest-xdist worker, whatever the installed pytest and pytest-xdist."""

import os
import re
import subprocess
import sys

from conftest import REPO


def test_the_tests_that_share_the_slurm_cluster_run_on_one_xdist_worker(tmp_path):
    """pytest 9.2 stopped taking pytest-xdist's group suffix: every worker then started a cluster
    of its own. Run the suite's conftest as a plugin over stand-in tests on two workers."""
    (tmp_path / "test_stand_ins.py").write_text(
        "import pytest\n\n"
        "@pytest.fixture(scope='session')\n"
        "def slurm():\n"
        "    return 'the one cluster'\n\n"
        "@pytest.mark.parametrize('i', range(6))\n"
        "def test_on_the_cluster(slurm, i):\n"
        "    pass\n\n"
        "@pytest.mark.parametrize('i', range(6))\n"
        "def test_elsewhere(i):\n"
        "    pass\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])}
    ran = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "-n", "2", "--dist", "loadgroup"]
        + ["-v", "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    workers = re.findall(r"\[(gw\d+)\] .*PASSED .*test_on_the_cluster\[\d\]@slurm", ran.stdout)
    assert len(workers) == 6 and len(set(workers)) == 1, ran.stdout[-3000:]
    assert len(re.findall(r"PASSED .*test_elsewhere\[\d\] ", ran.stdout)) == 6, ran.stdout[-3000:]
