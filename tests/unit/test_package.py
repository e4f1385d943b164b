"""The package reads top-down: no module imports, directly or through others, one that imports it."""

import ast

from conftest import PACKAGE


def module_name(path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Every resdeg module and the resdeg modules it imports anywhere, inside functions too."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                # `from resdeg import devices` imports a module; `from resdeg import ResdegError` the root
                targets = [
                    f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                    for a in node.names
                ]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and target.startswith("resdeg"):
                    graph[name].add(target)
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    found, state = [], {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                found.append(path[path.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for start in sorted(graph):
        if start not in state:
            visit(start, [start])
    return found


def test_the_package_has_no_import_circle_and_its_root_imports_nothing():
    graph = import_graph()
    assert circles(graph) == []
    # the root holds the version and the errors every module imports; it registers no resolver
    assert graph["resdeg"] == {"resdeg.errors"} and graph["resdeg.errors"] == set()


def test_composing_a_config_reads_no_output_file_and_imports_no_model(tmp_path):
    """The config resolvers are arithmetic: a sweep's config (here the parallel launcher's,
    whose job count reads the gpu-check CSV only when the sweep launches) composes in a process
    where the models, data and training were never imported, and reads nothing under results/."""
    import subprocess
    import sys

    code = (
        "import sys; from hydra import compose, initialize_config_dir; from omegaconf import OmegaConf;"
        "from resdeg.conf import CONFIG_DIR; from resdeg.resolvers import register_resolvers; register_resolvers();"
        "initialize_config_dir(config_dir=str(CONFIG_DIR), version_base='1.3');"
        "cfg = compose('config', ['hydra/launcher=parallel', 'data=imagenet', 'model=imagenet', 'model.depth=50',"
        f" 'paths.results={tmp_path / 'nowhere'}'], return_hydra_config=True);"
        "OmegaConf.resolve(cfg); print(cfg.hydra.launcher.n_jobs, cfg.model.shortcut);"
        "loaded = ('resdeg.models', 'resdeg.data', 'resdeg.training', 'resdeg.launch');"
        "print(sorted(m for m in sys.modules if m.startswith(loaded)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines() == ["auto paper", "[]"]
    assert not (tmp_path / "nowhere").exists()


def test_the_walk_sees_imports_inside_functions():
    graph = import_graph()
    assert "resdeg.training.signals" in graph["resdeg.build"]  # imported inside run_callbacks
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_the_console_script_composes_the_configs_from_any_folder(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    script = Path(sys.executable).with_name("resdeg-train")
    job = subprocess.run([str(script), "--cfg", "job", "model.depth=20"], cwd=tmp_path, capture_output=True, text=True)
    assert job.returncode == 0, job.stderr[-3000:]
    assert "depth: 20" in job.stdout and "_target_: resdeg.data.CIFAR10DataModule" in job.stdout
