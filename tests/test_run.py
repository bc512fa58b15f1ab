"""A run's folder: one way to find any of its models by name, with the same checks for compress and export."""

import json

import pytest

from studio.errors import ConfigError, ModelLoadError
from studio.run import LABELS_ONLY, RunPaths, VariantManifest, read_manifest
from studio.words import ModelForm, Task, VariantStatus


def made_run(tmp_path):
    run = RunPaths(tmp_path / "run")
    (run.student).mkdir(parents=True)
    (run.student / "studio_ready").write_text("complete\n")
    run.record_teacher(str(tmp_path / "teacher"), "minilm-l6", str(tmp_path / "teacher"))
    for name, status, form in [("small", "ok", "onnx"), ("broken", "unsupported", "bnb")]:
        (run.variants / name).mkdir(parents=True)
        (run.variants / name / "variant.json").write_text(
            json.dumps({"name": name, "status": status, "form": form, "reason": "no 4-bit kernels here"})
        )
    (run.variants / ".half.work").mkdir()  # a variant being made: not a model yet
    return run


def test_models_are_found_by_name_with_their_form_and_folder(tmp_path):
    run = made_run(tmp_path)
    assert run.variant_names() == ["broken", "small"]
    assert (run.find_model("student").folder, run.find_model("student").form) == (run.student, "torch")
    assert run.find_model("teacher").folder == tmp_path / "teacher"
    small = run.find_model("small")
    assert (small.form, small.folder, small.manifest.status) == ("onnx", run.variants / "small", "ok")


def test_anything_else_is_refused_with_the_names_there_are(tmp_path):
    run = made_run(tmp_path)
    for name in ["nope", "../student", ".half.work", "/etc", "Small", LABELS_ONLY]:
        with pytest.raises(ConfigError, match=r"not a model of this run; .*\(broken, small\)"):
            run.find_model(name)
    with pytest.raises(ConfigError, match=r"variant 'broken' is unsupported \(no 4-bit kernels here\)"):
        run.find_model("broken")
    (run.student / "studio_ready").unlink()
    with pytest.raises(ConfigError, match="no finished student yet"):
        run.find_model("student")
    run.teacher_json.unlink()
    with pytest.raises(ConfigError, match="not finished setting up its teacher"):
        run.find_model("teacher")


def test_a_damaged_manifest_says_what_to_do(tmp_path):
    run = made_run(tmp_path)
    (run.variants / "small" / "variant.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="damaged .* delete the variant and make it again"):
        read_manifest(run.variants / "small")
    for damaged in ['{"name": "small"}', '{"name": "small", "status": "maybe"}', "[1, 2]"]:
        (run.variants / "small" / "variant.json").write_text(damaged)
        with pytest.raises(ModelLoadError, match="damaged"):
            read_manifest(run.variants / "small")


def test_a_manifest_reads_back_typed_and_ignores_keys_a_newer_version_added(tmp_path):
    folder = tmp_path / "v"
    folder.mkdir()
    made = VariantManifest(
        "slim-int8",
        VariantStatus.OK,
        source="slim",
        recipe=[{"method": "prune-heads", "count": 1}, {"method": "int8"}],
        form=ModelForm.ONNX,
        task=Task.CLASSIFICATION,
        structure={"head_units": [1, 1]},
        params=1234,
    )
    made.write(folder)
    back = read_manifest(folder)
    assert back == made and back.ok and back.methods == "prune-heads+int8"
    assert type(back.status) is VariantStatus and type(back.form) is ModelForm and type(back.task) is Task
    written = json.loads((folder / "variant.json").read_text())
    assert written["status"] == "ok" and written["form"] == "onnx"  # plain strings on disk
    (folder / "variant.json").write_text(json.dumps({**written, "energy_wh": 0.2}))
    assert read_manifest(folder) == made
