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


@pytest.mark.parametrize(
    "command",
    [
        "catalog",
        "check-data",
        "distill",
        "evaluate",
        "show",
        "methods",
        "compress",
        "export",
        "worker",
        "jobs",
        "jobs list",
        "jobs show",
        "jobs cancel",
        "jobs resume",
        "jobs delete",
        "datasets list",
        "datasets delete",
        "ui",
    ],
)
def test_every_command_has_help(command):
    result = runner.invoke(app, [*command.split(), "--help"])
    assert result.exit_code == 0 and "Usage" in result.output


def test_settings_are_data_a_new_field_is_a_new_option():
    """The CLI's options are made from the settings' fields: help, choices, defaults and checks come with them."""
    import dataclasses

    import typer

    from studio.cli.shell import settings_options
    from studio.settings import Settings, setting

    @dataclasses.dataclass
    class Toy(Settings):
        rate: float = setting(0.5, "How fast it learns.")
        mode: str = setting("auto", "How it works.", choices=("auto", "fast"))
        loud: bool = setting(False, "Say more.", flag="verbose")

    seen = {}
    toy = typer.Typer()

    @toy.command()
    @settings_options(Toy)
    def go(name: str = "x", settings: dict | None = None) -> None:
        seen.update(name=name, **Toy.from_dict(settings or {}).to_dict())

    shown = runner.invoke(toy, ["--help"], env={"COLUMNS": "200"}).output
    assert "How fast it learns. Default: 0.5." in shown and "One of: auto, fast. Default: auto." in shown
    assert "--verbose" in shown
    assert runner.invoke(toy, ["--rate", "0.1", "--verbose", "--name", "y"]).exit_code == 0
    assert seen == {"name": "y", "rate": 0.1, "mode": "auto", "loud": True}
    refused = runner.invoke(toy, ["--mode", "slow"])
    assert refused.exit_code != 0 and "mode is 'slow'; use 'auto' or 'fast'" in str(refused.exception)


def test_every_distill_setting_has_help_and_an_option_and_the_browser_shows_the_advanced_ones():
    import dataclasses

    from studio.distill_config import DistillConfig
    from studio.ui.distill_step import ADVANCED

    shown = runner.invoke(app, ["distill", "--help"], env={"COLUMNS": "250"}).output
    for field in dataclasses.fields(DistillConfig):
        assert len(field.metadata["help"]) > 20, field.name
        assert f"--{field.metadata['flag'] or field.name.replace('_', '-')}" in shown, field.name
    from studio.dataset import DatasetOptions

    checking = runner.invoke(app, ["check-data", "--help"], env={"COLUMNS": "250"}).output
    for field in dataclasses.fields(DatasetOptions):  # the data's own settings: in both commands that read data
        assert len(field.metadata["help"]) > 10, field.name
        assert f"--{field.name.replace('_', '-')}" in shown and f"--{field.name.replace('_', '-')}" in checking
    assert {"student", "qlora", "lora_alpha", "weight_decay"} <= {f.name for f in ADVANCED}
    assert "teacher" not in {f.name for f in ADVANCED}  # chosen in step 1
    from studio.settings import applies_to, label_of

    by_name = {f.name: f for f in ADVANCED}
    assert not applies_to(by_name["top_k"], "classification") and applies_to(by_name["top_k"], "causal_lm")
    assert not applies_to(by_name["trim_vocab"], "causal_lm") and applies_to(by_name["seed"], "causal_lm")
    assert all(label_of(f) != f.name.replace("_", " ") for f in ADVANCED), "every advanced setting has a label in words"


def test_no_command_shows_welcome_and_exits_0():
    result = runner.invoke(app, [])
    assert result.exit_code == 0
    assert "minilm-l6" in result.output and "support_tickets.csv" in result.output


def test_check_data_writes_splits(samples, tmp_path):
    result = runner.invoke(app, ["check-data", str(samples / "support_tickets.csv"), "--out", str(tmp_path / "ds")])
    assert result.exit_code == 0, result.output
    assert "task classification" in result.output and "label=category" in result.output
    assert json.loads((tmp_path / "ds" / "report.json").read_text())["rows_used"] == 3000


def test_check_data_takes_a_file_of_texts_without_a_label(tmp_path):
    main = tmp_path / "tickets.csv"
    main.write_text("text,label\n" + "".join(f"parcel late {i},delivery\nrefund please {i},billing\n" for i in range(10)))
    more = tmp_path / "more.txt"
    more.write_text("where is my order\nthe box came open\n\ncan I pay by invoice\n")
    result = runner.invoke(app, ["check-data", str(main), "--unlabelled", str(more), "--out", str(tmp_path / "ds")])
    assert result.exit_code == 0, result.output
    assert "texts without a label: 3, with those of more.txt" in result.output
    assert len((tmp_path / "ds" / "unlabelled.jsonl").read_text().splitlines()) == 3


def test_broken_file_gives_message_not_traceback(tmp_path):
    bad = tmp_path / "tickets.csv"
    bad.write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    result = runner.invoke(app, ["check-data", str(bad)])
    assert result.exit_code == 2
    assert "ZIP archive" in result.output and "Traceback" not in result.output


def test_bad_settings_listed_together(samples, tmp_path):
    result = runner.invoke(app, ["distill", "--data", str(samples / "support_tickets.csv"), "--alpha", "2", "--temperature", "0"])
    assert result.exit_code == 2
    assert "alpha is 2.0" in result.output and "temperature is 0.0" in result.output


def test_cli_runs_are_jobs_in_the_history(tiny_bert, samples, tmp_path, studio_home):
    """The real entry point, in fresh processes, as a user runs it: distill, compress, list, show, delete."""
    data = tmp_path / "t.csv"
    data.write_text("\n".join((samples / "support_tickets.csv").read_text().splitlines()[:301]) + "\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SLM_STUDIO_HOME": str(studio_home)}

    def studio(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "studio", *args], capture_output=True, text=True, env=env, timeout=300)

    done = studio(
        "distill",
        "--data",
        str(data),
        "--teacher",
        str(tiny_bert),
        "--student-layers",
        "2",
        "--epochs",
        "1",
        "--teacher-epochs",
        "1",
        "--max-length",
        "48",
        "--min-steps",
        "0",
        "--teacher-learning-rate",
        "1e-3",
        "--labels-only",
    )
    assert done.returncode == 0, done.stderr
    assert "distill student" in done.stderr  # the progress bar
    assert "Job 1 " in done.stdout
    header = next(line for line in done.stdout.splitlines() if line.startswith("model"))
    assert "accuracy" in header and "macro-F1" in header and "per s" in header
    for name in ("tfidf-baseline", "majority-baseline", "student-labels-only"):
        assert any(line.startswith(name) for line in done.stdout.splitlines()), name
    assert "The student, label by label" in done.stdout and " 48 tokens" in done.stdout  # what the run chose
    run = studio_home / "artifacts" / "jobs" / "1"
    assert (run / "eval.json").exists() and (run / "student" / "model.safetensors").exists()

    made = studio("compress", "1", "-v", "small=int8", "--no-evaluate")
    assert made.returncode == 0, made.stderr
    assert "small: ok" in made.stdout and (run / "variants" / "small" / "variant.json").exists()

    missing = studio("export", "1", "--variant", "nope")
    assert missing.returncode == 2 and "no variant named 'nope'" in missing.stderr
    exported = subprocess.run(
        [sys.executable, "-m", "studio", "export", "1", "--variant", "small", "--no-onnx"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )
    assert exported.returncode == 0, exported.stderr
    assert "slm-studio-job1-small.zip" in exported.stdout and "onnx/model.onnx" in exported.stdout
    import zipfile

    names = zipfile.ZipFile(tmp_path / "slm-studio-job1-small.zip").namelist()
    assert "slm-studio-job1-small/README.md" in names and "slm-studio-job1-small/model/config.json" in names

    listed = studio("jobs", "list")
    lines = [line.split() for line in listed.stdout.splitlines()]
    assert [(cells[0], cells[3], cells[4]) for cells in lines] == [
        ("3", "export", "done"),
        ("2", "compress", "done"),
        ("1", "distill", "done"),
    ]
    shown = studio("show", "1")
    assert "status done" in shown.stdout and "student" in shown.stdout and "files" in shown.stdout

    refused = studio("jobs", "resume", "1")
    assert refused.returncode == 2 and "only an interrupted" in refused.stderr
    in_use = studio("datasets", "delete", "1")
    assert in_use.returncode == 2 and "used by job(s) 1" in in_use.stderr
    gone = studio("jobs", "delete", "1", "--yes")
    assert gone.returncode == 0 and "1, 2, 3" in gone.stdout
    assert not run.exists()
    assert "No jobs yet" in studio("jobs", "list").stdout
    assert studio("datasets", "delete", "1").returncode == 0
    assert not list((studio_home / "artifacts" / "datasets").iterdir())


def test_methods_lists_the_registry_with_each_setting_explained():
    import dataclasses

    from studio.compress import METHODS

    result = runner.invoke(app, ["methods"])
    assert result.exit_code == 0
    for method in METHODS.values():
        assert method.name in result.output
        for field in dataclasses.fields(method.settings):
            assert len(field.metadata["help"]) > 20, (method.name, field.name)
            assert f"{field.name}=" in result.output and field.metadata["help"] in result.output
    assert "sparsity=0.5: Share of weights set to zero" in result.output


def test_compress_and_export_options_are_their_job_settings():
    import dataclasses

    from studio.export.settings import ExportSettings
    from studio.jobs.kinds import CompressJob

    for command, cls, skip in [("compress", CompressJob, {"recipes"}), ("export", ExportSettings, set())]:
        shown = runner.invoke(app, [command, "--help"], env={"COLUMNS": "250"}).output
        for field in dataclasses.fields(cls):
            if field.name not in skip:
                assert len(field.metadata["help"]) > 20 and f"--{field.name.replace('_', '-')}" in shown, (command, field.name)


def test_compress_on_a_job_that_does_not_exist_is_a_message():
    result = runner.invoke(app, ["compress", "41", "-v", "int8"])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert "There is no job 41" in result.output


def test_split_variant_names():
    from studio.cli.steps import split_variant

    assert split_variant("small=prune-heads:fraction=0.5+int8") == ("small", "prune-heads:fraction=0.5+int8")
    assert split_variant("heal:epochs=2") == (None, "heal:epochs=2")
    assert split_variant("int8") == (None, "int8")
