"""Export: every format in the zip is reloaded in a fresh Python process that cannot import the
studio, and must answer like the model it came from."""

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from studio.baselines import BASE_TEACHER
from studio.compress.pipeline import compress, parse_recipe
from studio.compress.variant import load_variant
from studio.dataset import load_prepared
from studio.errors import ConfigError
from studio.evaluate import evaluate_run
from studio.export.bundle import export_model
from studio.export.gguf_check import agreement_prompts
from studio.export.settings import ExportSettings
from studio.models import load_for_task, load_tokenizer
from studio.run import RunPaths, dataset_folder
from studio.teacher import resolve_source

TEXTS = ["my card was charged twice for one order", "where is my parcel, it is late", "cannot log in at all"]

RELOAD = r"""
import json, sys
from pathlib import Path
import numpy as np
try:
    import studio  # noqa: F401
    sys.exit("the studio is importable here: the reload would not prove anything")
except ImportError:
    pass
import onnxruntime
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

folder, task, texts = Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
auto = AutoModelForSequenceClassification if task == "classification" else AutoModelForCausalLM
tok = AutoTokenizer.from_pretrained(folder / "model")
tok.pad_token = tok.pad_token or tok.eos_token
enc = tok(texts, padding=True, truncation=True, max_length=48, return_tensors="pt")
out = {"mask": enc["attention_mask"].tolist()}
model = auto.from_pretrained(folder / "model", trust_remote_code=False, use_safetensors=True).eval()
out["model"] = model(**enc).logits.detach().float().tolist()
if (folder / "onnx" / "model.onnx").exists():
    session = onnxruntime.InferenceSession(str(folder / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    feeds = {k: v.numpy().astype(np.int64) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
    out["onnx"] = session.run(None, feeds)[0].tolist()
out["ids"] = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
prompts = [tok(t, truncation=True, max_length=64)["input_ids"] for t in json.loads(sys.argv[4])]
greedy = lambda m: [m(input_ids=torch.tensor([i])).logits[0].argmax(-1) for i in prompts]
want = greedy(model) if prompts else []
for gguf in sorted((folder / "gguf").glob("*.gguf")) if (folder / "gguf").exists() else []:
    g_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name).eval()
    g_tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    out.setdefault("gguf_ids", {})[gguf.name] = [g_tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    out.setdefault("gguf", {})[gguf.name] = g_model(**enc).logits.detach().float().tolist()
    same = sum(int((w == g).sum()) for w, g in zip(want, greedy(g_model)))
    out.setdefault("agreement", {})[gguf.name] = same / max(1, sum(len(w) for w in want))
print(json.dumps(out))
"""


def fresh_env(tmp_path: Path) -> dict:
    """A child Python that has the venv's libraries but not the studio (no PYTHONPATH, cwd elsewhere)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)}


def unzip(zip_path: Path, dest: Path) -> Path:
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(dest)
    (top,) = list(dest.iterdir())
    return top


def reload(folder: Path, task: str, tmp_path: Path, prompts: list[str] = ()) -> dict:
    """``prompts``: also the greedy next-token agreement of each GGUF file with model/ on them."""
    done = subprocess.run(
        [sys.executable, "-c", RELOAD, str(folder), task, json.dumps(TEXTS), json.dumps(list(prompts))],
        cwd=tmp_path,
        env=fresh_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def original_logits(model, tokenizer) -> torch.Tensor:
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    enc = tokenizer(TEXTS, padding=True, truncation=True, max_length=48, return_tensors="pt")
    with torch.inference_mode():
        return model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits.float()


def in_memory_probabilities(folder: Path, labels: list[str], texts: list[str]) -> torch.Tensor:
    source = resolve_source(str(folder))
    model, tokenizer = load_for_task(source, "classification", labels).eval(), load_tokenizer(source)
    with torch.inference_mode():
        logits = torch.cat([model(**tokenizer([t], truncation=True, max_length=128, return_tensors="pt")).logits for t in texts])
    return logits.softmax(-1)


def close(got: list, want: torch.Tensor, mask: list | None = None, atol: float = 1e-3) -> bool:
    got_t = torch.tensor(got)
    if mask is not None:  # causal LM: padded positions carry no meaning
        m = torch.tensor(mask).bool()
        got_t, want = got_t[m], want[m]
    return torch.allclose(got_t, want, atol=atol * max(1.0, float(want.abs().max())))


def variant(run: Path, name: str, recipe: str) -> Path:
    if not (run / "variants" / name).exists():
        assert compress(run, parse_recipe(recipe), name=name).status == "ok"
    return run / "variants" / name


def test_structurally_pruned_classifier_exports_to_plain_from_pretrained_and_onnx(cls_run, tmp_path):
    folder = variant(cls_run, "x-slim", "prune-heads:count=1+prune-neurons:fraction=0.3")
    result = export_model(cls_run, ExportSettings(variant="x-slim"), tmp_path / "x-slim.zip")
    assert result.zip_path.exists() and result.bytes == result.zip_path.stat().st_size
    assert result.checks["model"] < 1e-3 and result.checks["onnx"] < 1e-3
    top = unzip(result.zip_path, tmp_path / "out")
    assert {"README.md", "predict.py", "export.json", "model", "onnx"} <= {p.name for p in top.iterdir()}
    assert not list(top.rglob("*.bin")) and not list(top.rglob("*.pt")) and not (top / "model" / "variant.json").exists()
    wm = load_variant(folder)
    want = original_logits(wm.model, wm.tokenizer)
    got = reload(top, "classification", tmp_path)
    assert close(got["model"], want) and close(got["onnx"], want)


def test_onnx_int8_variant_after_pruning_exports_its_own_float_model(cls_run, tmp_path):
    variant(cls_run, "x-slim-int8", "prune-heads:count=1+int8")
    float_wm = load_variant(cls_run / "variants" / "x-slim-int8" / "float")
    assert float_wm.structure == {"head_units": [1, 1], "neurons": [64, 64]}
    result = export_model(cls_run, ExportSettings(variant="x-slim-int8"), tmp_path / "q.zip")
    top = unzip(result.zip_path, tmp_path / "out")
    got = reload(top, "classification", tmp_path)
    assert close(got["model"], original_logits(float_wm.model, float_wm.tokenizer))  # model/ is the pruned float
    int8 = load_variant(cls_run / "variants" / "x-slim-int8")
    assert close(got["onnx"], original_logits(int8.model, int8.tokenizer))  # onnx/ is the int8 variant itself
    assert json.loads((top / "export.json").read_text())["runtime"] == "onnx"
    assert "base_model_relation: quantized" in (top / "README.md").read_text()  # int8 weights (Method.low_bit)


def test_hybrid_classifier_measures_share_and_predict_py_answers(cls_run, tmp_path):
    result = export_model(
        cls_run,
        ExportSettings(variant="student", hybrid=True),
        tmp_path / "h.zip",
        metrics={"teacher": {"accuracy": 0.9, "params": 1e6}, "student": {"accuracy": 0.8}},
    )
    hybrid = result.hybrid
    # Its figures, against the student and teacher in memory on the same test split (one text of slack for ties)
    config = json.loads((cls_run / "config.json").read_text())
    test = load_prepared(dataset_folder(config, cls_run)).split("test")
    texts, truth = [r["text"] for r in test], [config["labels"].index(r["label"]) for r in test]
    student = in_memory_probabilities(cls_run / "student", config["labels"], texts)
    teacher = in_memory_probabilities(Path(RunPaths(cls_run).teacher_info()["path"]), config["labels"], texts)
    one = 1 / len(test) + 1e-9
    confident = student.max(-1).values >= hybrid["threshold"]
    assert abs(hybrid["student_share"] - confident.float().mean().item()) <= one
    assert abs(hybrid["student_accuracy"] - (student.argmax(-1) == torch.tensor(truth)).float().mean().item()) <= one
    assert abs(hybrid["teacher_accuracy"] - (teacher.argmax(-1) == torch.tensor(truth)).float().mean().item()) <= one
    hybrid_right = torch.where(confident, student.argmax(-1), teacher.argmax(-1)) == torch.tensor(truth)
    assert abs(hybrid["hybrid_accuracy"] - hybrid_right.float().mean().item()) <= one
    top = unzip(result.zip_path, tmp_path / "out")
    settings = json.loads((top / "export.json").read_text())
    assert settings["threshold"] == hybrid["threshold"] and (top / "teacher" / "config.json").exists()
    card = (top / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: transformers\npipeline_tag: text-classification")
    assert f"{hybrid['student_share']:.1%}" in card and "| teacher |" in card and "90.0%" in card
    assert '  - "onnx"' in card and "pip install torch transformers onnxruntime" in card
    assert [row["threshold"] for row in hybrid["curve"]] == [0.5, 0.7, 0.8, 0.9, 0.95, 0.99]
    assert all(a["student_share"] >= b["student_share"] for a, b in zip(hybrid["curve"], hybrid["curve"][1:]))
    assert "| 0.90 |" in card
    dataset = dataset_folder(json.loads((cls_run / "config.json").read_text()), cls_run)
    rows = [json.loads(line)["text"] for line in (Path(dataset) / "train.jsonl").read_text().splitlines()[:50]]
    assert not any(row in card for row in rows)  # counts, never the owner's rows
    done = subprocess.run(
        [sys.executable, str(top / "predict.py"), "--json", "--threshold", "1", *TEXTS],
        cwd=tmp_path,
        env=fresh_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert [a["by"] for a in answers] == ["teacher"] * 3  # threshold 1: the teacher answers everything
    student = load_for_task(resolve_source(str(cls_run / "student")), "classification", settings["labels"])
    done = subprocess.run(
        [sys.executable, str(top / "predict.py"), "--json", "--threshold", "0", *TEXTS],
        cwd=tmp_path,
        env=fresh_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    labels = [
        student.config.id2label[int(i)]
        for i in original_logits(student, load_tokenizer(resolve_source(str(cls_run / "student")))).argmax(-1)
    ]
    assert [json.loads(line)["answer"] for line in done.stdout.splitlines()] == labels


def test_threshold_one_sends_everything_to_the_teacher_and_stays_in_range():
    from studio.export.hybrid import choose_threshold
    from studio.export.predict import student_answers

    assert student_answers(0.7, 0.7) and not student_answers(0.69, 0.7)
    assert not student_answers(1.0, 1.0)  # a float32 softmax can say exactly 1.0
    labels = ["a", "b", "a", "b"]
    hopeless = [("b", 1.0), ("a", 0.99), ("b", 0.6), ("a", 1.0)]  # always wrong, often sure
    assert choose_threshold(hopeless, labels, labels) == 1.0
    assert choose_threshold([(y, 0.8) for y in labels], labels, labels) == 0.0


def test_causal_student_exports_safetensors_onnx_and_gguf(lm_run, tmp_path):
    # metrics={}: whether the tiny random student passes the fluency check is no business of this test
    result = export_model(lm_run, ExportSettings(variant="student", hybrid=True), tmp_path / "lm.zip", metrics={})
    top = unzip(result.zip_path, tmp_path / "out")
    names = [f"student-{t}.gguf" for t in ("f16", "q8_0", "q4_0")]
    assert sorted(p.name for p in (top / "gguf").glob("*.gguf")) == sorted(names)
    source = resolve_source(str(lm_run / "student"))
    want = original_logits(load_for_task(source, "causal_lm", []), load_tokenizer(source))
    prompts = agreement_prompts(load_prepared(dataset_folder(RunPaths(lm_run).read_config(), lm_run)).split("test"))
    got = reload(top, "causal_lm", tmp_path, prompts.texts)
    assert close(got["model"], want, got["mask"]) and close(got["onnx"], want, got["mask"])
    assert all(got["gguf_ids"][name] == got["ids"] for name in names)
    assert close(got["gguf"]["student-f16.gguf"], want, got["mask"], atol=2e-2)  # f16 weights
    # Each file's size and agreement, as measured in the export, in export.json, the result's checks and the card;
    # the agreement measured again here, in a process that never saw the studio.
    rows = json.loads((top / "export.json").read_text())["gguf"]
    card = (top / "README.md").read_text()
    assert [r["file"] for r in rows] == [f"gguf/{name}" for name in names]
    assert "### The GGUF files against the float model" in card and prompts.source.startswith("20 held-out test prompts")
    for row in rows:
        name = row["file"].removeprefix("gguf/")
        assert row["bytes"] == (top / row["file"]).stat().st_size == result.checks[f"{row['file']} bytes"]
        assert row["agreement"] == result.checks[f"{row['file']} agreement"]
        assert row["agreement"] == pytest.approx(got["agreement"][name], abs=1 / row["positions"])
        assert row["prompts"] == prompts.source and row["f16_matrices"] == []
        assert f"| `{row['file']}` | {row['weight_type']} | {row['bytes']:,} " in card
        assert f"| {row['agreement']:.1%} |" in card
    assert rows[2]["bytes"] < rows[1]["bytes"] < rows[0]["bytes"]
    assert prompts.source in card
    hybrid = result.hybrid  # no right answer to aim at: about half of the validation prompts go to the teacher
    assert "median confidence" in hybrid["threshold_source"] and 0.0 < hybrid["threshold"] < 1.0
    assert 0.0 <= hybrid["student_share"] <= 1.0 and len(hybrid["curve"]) == 6
    done = subprocess.run(
        [sys.executable, str(top / "predict.py"), "--json", "Do you ship abroad?"],
        cwd=tmp_path,
        env=fresh_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1])["by"] in ("student", "teacher")


def test_a_generator_whose_answers_fail_the_fluency_check_never_answers_alone(lm_run, tmp_path):
    report = evaluate_run(lm_run)  # the tiny student of random weights writes no sentences
    student = next(m for m in report["models"] if m["name"] == "student")
    book = report["answers"]
    assert len(book["by_model"]["student"]) == len(book["prompts"]) == min(50, report["test_examples"])
    assert set(book["by_model"]) == {BASE_TEACHER, "teacher", "student"}
    from rouge_score import rouge_scorer  # the score is the student's answers' against the references shown beside them

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    pairs = zip(book["by_model"]["student"], book["references"])
    assert student["rouge_l"] == pytest.approx(
        sum(scorer.score(r, a)["rougeL"].fmeasure for a, r in pairs) / len(book["prompts"])
    )
    failing = {**student, "fluent": False, "fluency_note": "9 of 10 answers are no answer at all"}
    result = export_model(
        lm_run,
        ExportSettings(variant="student", hybrid=True, onnx=False, gguf=False),
        tmp_path / "lm.zip",
        metrics={"student": failing},
    )
    assert result.hybrid["threshold"] == 1.0 and result.hybrid["student_share"] == 0.0
    assert "fail the fluency check" in result.hybrid["threshold_source"]
    top = unzip(result.zip_path, tmp_path / "out")
    card = (top / "README.md").read_text()
    assert "### What it writes" in card and "fail the fluency check" in card
    assert json.loads((top / "export.json").read_text())["threshold"] == 1.0
    done = subprocess.run(
        [sys.executable, str(top / "predict.py"), "--json", "Do you ship abroad?"],
        cwd=tmp_path,
        env=fresh_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1])["by"] == "teacher"


def test_pruned_llama_exports_to_a_config_that_describes_it(lm_run, tmp_path):
    folder = variant(lm_run, "x-lm-slim", "prune-neurons:fraction=0.5")
    settings = ExportSettings(variant="x-lm-slim", onnx=False, gguf=True, gguf_types="f16")
    result = export_model(lm_run, settings, tmp_path / "s.zip")
    top = unzip(result.zip_path, tmp_path / "out")
    assert [p.name for p in (top / "gguf").iterdir()] == ["x-lm-slim-f16.gguf"]  # only the types asked for
    config = json.loads((top / "model" / "config.json").read_text())
    assert config["intermediate_size"] == 32  # uniform pruning: smaller config, no padding
    wm = load_variant(folder)
    got = reload(top, "causal_lm", tmp_path)
    want = original_logits(wm.model, wm.tokenizer)
    assert close(got["model"], want, got["mask"]) and close(got["gguf"]["x-lm-slim-f16.gguf"], want, got["mask"], atol=2e-2)


def test_unknown_or_unmade_variant_is_refused_without_a_zip(cls_run, tmp_path):
    for name in ["nope", "../student", ".hidden"]:
        with pytest.raises(ConfigError, match="not a model of this run"):
            export_model(cls_run, ExportSettings(variant=name), tmp_path / "x.zip")
    with pytest.raises(ConfigError, match="threshold"):
        ExportSettings(threshold=1.5)
    assert not list(tmp_path.iterdir())


def test_a_users_words_cannot_change_the_model_card():
    from studio.export.card import model_card

    evil = "ok\n# Hacked\n[click](http://evil.example) <img src=x onerror=alert(1)> | cell"
    card = model_card(
        {
            "task": "classification",
            "name": "student",
            "teacher": "/models/my[teacher](x)",
            "role": "student",
            "report": {
                "task": "classification",
                "format": "csv",
                "rows_used": 9,
                "rows_read": 9,
                "split_sizes": {},
                "label_counts": {evil: 3, "billing": 3},
                "text_column": "text\n## Columns",
                "label_column": "label",
            },
            "distill": {"teacher": "/models/my[teacher](x)"},
            "recipe": [],
            "metrics": {},
            "files": {},
            "notes": [],
        }
    )
    assert "Hacked" in card and not any(line.startswith(("# Hacked", "## Columns")) for line in card.splitlines())
    import re

    assert "](http" not in card and "](x)" not in card and not re.search(r"(?<!\\)<img", card)
    assert "- Labels (rows): billing (3), ok \\# Hacked" in card  # still readable, one line, escaped


def test_the_tfidf_baseline_exports_as_one_onnx_graph_measured_as_exported(cls_run, tmp_path):
    from studio.baselines import TFIDF, fit_baselines
    from studio.dataset import load_prepared

    result = export_model(cls_run, ExportSettings(variant=TFIDF), tmp_path / "b.zip")
    top = unzip(result.zip_path, tmp_path / "out")
    assert sorted(p.name for p in top.iterdir()) == ["README.md", "baseline.onnx", "export.json", "predict.py"]
    assert 0.9 <= result.checks["onnx_agreement"] <= 1.0
    card = (top / "README.md").read_text()
    assert "library_name: onnx" in card and "macro-F1" in card and "| label | precision |" in card
    with pytest.raises(ConfigError, match="exports alone"):
        export_model(cls_run, ExportSettings(variant=TFIDF, hybrid=True), tmp_path / "c.zip")
    # the zip answers with onnxruntime and numpy only, like the baseline it came from (for these texts)
    done = subprocess.run(
        [sys.executable, str(top / "predict.py"), "--json", *TEXTS],
        cwd=tmp_path,
        env=fresh_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    config = json.loads((cls_run / "config.json").read_text())
    fitted = next(
        b
        for b in fit_baselines(load_prepared(dataset_folder(config, cls_run)).split("train"), config["labels"])
        if b.name == TFIDF
    )
    assert [json.loads(line)["answer"] for line in done.stdout.splitlines()] == list(fitted.pipeline.predict(TEXTS))


def test_a_gemma_taught_export_carries_the_gemma_terms(tmp_path):
    from studio.export.bundle import _add_teacher_terms, _licence_id
    from studio.teacher import CATALOG

    run, stage = tmp_path / "run", tmp_path / "stage"
    run.mkdir(), stage.mkdir()
    files, notes = {}, []
    (run / "teacher.json").write_text(json.dumps({"name": "minilm-l6", "path": "x"}))
    _add_teacher_terms(run, stage, files, notes)
    assert not files and not notes and not list(stage.iterdir())
    (run / "teacher.json").write_text(json.dumps({"name": "gemma3-270m", "path": "x"}))
    _add_teacher_terms(run, stage, files, notes)
    assert (stage / "GEMMA_TERMS.html").read_text().count("Gemma") > 10 and "GEMMA_TERMS.html" in files
    assert notes == [CATALOG["gemma3-270m"].terms_notice] and "Model Derivatives" in notes[0]
    assert _licence_id(CATALOG["gemma3-270m"].licence) == "gemma" and _licence_id("Apache-2.0") == "apache-2.0"
