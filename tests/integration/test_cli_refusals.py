"""Bad input through the training CLI: exit 2, one message naming the key or the data's place, no record."""

import pytest

from conftest import BAD, run_cli, write_cifar_folder


@pytest.mark.parametrize("override,message", BAD[:2], ids=[b[0] for b in BAD[:2]])
def test_the_cli_refuses_a_bad_value_in_one_line_with_exit_2_and_no_record(tmp_path, override, message):
    data = write_cifar_folder(tmp_path / "data")
    result = run_cli(
        "protocol=cifar_quick",
        f"data.root={data}",
        f"paths.results={tmp_path / 'results'}",
        f"paths.experiments={tmp_path / 'exp'}",
        override,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    errors = [line for line in output.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0], output[-3000:]
    assert "Traceback" not in output
    assert not (tmp_path / "results").exists()  # nothing written, nothing marked


@pytest.mark.parametrize(
    "override,message",
    [
        ("model.depth=21", "depth must be 6n+2"),
        ("model.shortcut=D", "choose one of A, B, C"),
        ("model.arch=dense", "choose one of plain, residual"),
        ("model.dept=20", "Could not override 'model.dept'"),
        ("protocol=cifar_fast", "cifar_quick"),
    ],
)
def test_bad_input_gives_one_clear_message_and_no_record(tmp_path, override, message):
    data = write_cifar_folder(tmp_path / "data")
    result = run_cli(
        override, f"data.root={data}", f"paths.results={tmp_path / 'results'}", f"paths.experiments={tmp_path / 'exp'}"
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert message in output
    assert "Traceback" not in output
    assert not list((tmp_path / "results").rglob("summary.json"))


def test_missing_data_names_where_to_put_it(tmp_path):
    result = run_cli(
        f"data.root={tmp_path / 'nothing'}",
        f"paths.results={tmp_path / 'results'}",
        f"paths.experiments={tmp_path / 'exp'}",
    )
    assert result.returncode == 2
    assert (
        "no CIFAR-10 found" in result.stdout + result.stderr
        and "cifar-10-python.tar.gz" in result.stdout + result.stderr
    )
    assert not (tmp_path / "results").exists()
