import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from studio.cli import app

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


@pytest.mark.parametrize("command", ["catalog", "check-data", "distill", "evaluate", "show", "methods", "compress"])
def test_every_command_has_help(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_no_command_shows_welcome_and_exits_0():
    result = runner.invoke(app, [])
    assert result.exit_code == 0
    assert "minilm-l6" in result.output and "support_tickets.csv" in result.output


def test_check_data_writes_splits(samples, tmp_path):
    result = runner.invoke(app, ["check-data", str(samples / "support_tickets.csv"), "--out", str(tmp_path / "ds")])
    assert result.exit_code == 0, result.output
    assert "task classification" in result.output and "label=category" in result.output
    assert json.loads((tmp_path / "ds" / "report.json").read_text())["rows_used"] == 3000


def test_broken_file_gives_message_not_traceback(tmp_path):
    bad = tmp_path / "tickets.csv"
    bad.write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    result = runner.invoke(app, ["check-data", str(bad)])
    assert result.exit_code == 2
    assert "ZIP archive" in result.output and "Traceback" not in result.output


def test_bad_settings_listed_together(samples, tmp_path):
    result = runner.invoke(app, ["distill", "--data", str(samples / "support_tickets.csv"), "--alpha", "2",
                                 "--temperature", "0", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2
    assert "alpha is 2.0" in result.output and "temperature is 0.0" in result.output


def test_distill_command_end_to_end(tiny_bert, samples, tmp_path):
    """The real entry point, in a fresh process, as a user runs it."""
    data = tmp_path / "t.csv"
    data.write_text("\n".join((samples / "support_tickets.csv").read_text().splitlines()[:301]) + "\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "studio", "distill", "--data", str(data), "--teacher", str(tiny_bert),
           "--student-layers", "2", "--epochs", "1", "--teacher-epochs", "1", "--max-length", "48", "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "distill student" in done.stderr  # the progress bar
    lines = done.stdout.splitlines()
    header = next(line for line in lines if line.startswith("model"))
    assert "accuracy" in header and "macro-F1" in header and "per s" in header
    assert any(line.startswith("student") for line in lines)
    assert (out / "eval.json").exists()


def test_methods_lists_the_registry():
    result = runner.invoke(app, ["methods"])
    assert result.exit_code == 0
    for name in ["int8", "bnb-nf4", "magnitude", "prune-heads", "prune-layers", "heal"]:
        assert name in result.output
    assert "sparsity=0.5" in result.output


def test_compress_on_a_folder_that_is_not_a_run_is_a_message(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    result = runner.invoke(app, ["compress", str(run), "-v", "int8"])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert "not a distillation run" in result.output


def test_split_variant_names():
    from studio.cli import split_variant

    assert split_variant("small=prune-heads:fraction=0.5+int8") == ("small", "prune-heads:fraction=0.5+int8")
    assert split_variant("heal:epochs=2") == (None, "heal:epochs=2")
    assert split_variant("int8") == (None, "int8")
