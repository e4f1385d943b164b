"""The built wheel holds the configs and trains from a folder that is not the repository."""

from conftest import PACKAGE, REPO


def test_the_built_wheel_holds_the_configs_and_trains_from_anywhere(tmp_path):
    """`pip install .` (not editable) and `resdeg-train` find the configs inside the package:
    the wheel is built from a copy of the project, installed into a folder of its own, and a
    two-iteration run is trained from it, launched in a folder that is not the repository."""
    import os
    import shutil
    import subprocess
    import sys
    import zipfile

    from conftest import write_cifar_folder

    project = tmp_path / "project"
    shutil.copytree(REPO / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, project / name)
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
            str(project),
        ],
        capture_output=True,
        text=True,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("resdeg-*.whl")
    shipped = {
        name.removeprefix("resdeg/") for name in zipfile.ZipFile(wheel).namelist() if name.startswith("resdeg/conf/")
    }
    configs = {str(p.relative_to(PACKAGE)) for p in (PACKAGE / "conf").rglob("*.yaml")}
    assert configs and configs <= shipped, configs - shipped

    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(tmp_path / "site"), str(wheel)],
        capture_output=True,
        text=True,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    env.pop("RESDEG_CIFAR_ROOT", None)
    where = subprocess.run(
        [sys.executable, "-c", "import resdeg; print(resdeg.__file__)"],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
    )
    assert where.stdout.startswith(str(tmp_path / "site")), where.stdout + where.stderr  # the wheel's, not the repo's
    data = write_cifar_folder(elsewhere / "data")
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "resdeg.train",
            f"data.root={data}",
            "model.depth=8",
            "protocol=cifar_quick",
            "protocol.iterations=2",
            "protocol.batch_size=20",
            "protocol.log_every=1",
            "protocol.eval_every=2",
            "protocol.schedule.warmup_iterations=1",
        ],
        cwd=elsewhere,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert list((elsewhere / "results" / "runs").glob("*/*/summary.json"))  # results where it was launched
