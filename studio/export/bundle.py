"""Writing the export: the model folder, the other formats, the card, the zip (see the package docstring)."""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import torch

from studio.baselines import NAMES as BASELINES
from studio.baselines import TFIDF
from studio.compress import METHODS
from studio.compress.variant import load_variant
from studio.dataset import load_prepared
from studio.errors import ConfigError, ModelLoadError, UnsupportedError
from studio.export.card import model_card
from studio.export.gguf import WEIGHT_TYPES, write_gguf
from studio.export.gguf_check import GgufCheck, Prompts, agreement_prompts, measure_gguf_files
from studio.export.hybrid import measure
from studio.export.linear import export_linear_baseline
from studio.export.plain import copy_hf_folder, plain_model, same_predictions
from studio.export.settings import EXPORT_JSON, ExportResult, ExportSettings
from studio.models import SAFE_LOAD, auto_class, load_for_task
from studio.onnx import OnnxModel, export_onnx
from studio.progress import ProgressFn, item_progress
from studio.run import LABELS_ONLY, RunModel, RunPaths, dataset_folder, read_manifest
from studio.teacher import CATALOG, resolve_source, terms_path
from studio.words import ModelForm, Task


def choose(run_dir: Path, name: str) -> RunModel:
    return RunPaths(run_dir).find_model(name)


# --------------------------------------------------------------------------- the model folder


def write_model_folder(run_dir: Path, chosen: RunModel, dest: Path, task: str, labels: list[str]) -> list[str]:
    """model/ as a plain Hugging Face folder; returns notes for the card."""

    manifest = chosen.manifest
    if chosen.form == ModelForm.ONNX:  # the float model the ONNX graph was made from
        source = float_of(run_dir, chosen)
        notes = write_model_folder(run_dir, source, dest, task, labels)
        if source.folder == chosen.folder / "float":
            return notes
        if manifest is not None and len(manifest.recipe) > 1:  # made before variants kept their float model
            return notes + [
                f"`model/` holds {source.name} *before* this variant's earlier steps "
                f"({', '.join(s['method'] for s in manifest.recipe[:-1])}): the float weights of "
                "this variant were not kept when it was made. The variant itself is `onnx/model.onnx`; "
                "make the variant again for a matching `model/`."
            ]
        return notes + [
            f"`model/` holds {source.name}, the float model this ONNX variant was converted from; "
            "the variant itself is `onnx/model.onnx`."
        ]
    if chosen.form == ModelForm.BNB or manifest is None or not (manifest.structure or manifest.sparse):
        copy_hf_folder(chosen.folder, dest)
        return (
            [
                "The weights are bitsandbytes-quantized: loading them needs `pip install bitsandbytes` (and runs "
                "fastest on a CUDA GPU)."
            ]
            if chosen.form == ModelForm.BNB
            else []
        )
    wm = load_variant(chosen.folder)
    model, notes = plain_model(wm)
    model.save_pretrained(dest)
    wm.tokenizer.save_pretrained(dest)
    if manifest.sparse:
        notes.append(
            "The pruned weights are stored dense here (zeros included) so any runtime can read them; "
            "the zeros compress well in the zip."
        )
    return notes


def float_of(run_dir: Path, chosen: RunModel) -> RunModel:
    """An ONNX variant's float model: kept in its float/ (when the recipe pruned first), else its source."""

    if (chosen.folder / "float").exists():
        manifest = read_manifest(chosen.folder / "float")
        return RunModel(chosen.name, manifest.form, chosen.folder / "float", manifest)
    return choose(run_dir, chosen.manifest.source if chosen.manifest else "student")


def load_exported(model_dir: Path, task: str, texts: list[str]) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """model/ loaded once with plain from_pretrained (as a user will), and the check inputs."""

    return auto_class(task).from_pretrained(model_dir, **SAFE_LOAD).eval(), _inputs(model_dir, texts)


def largest_logit_difference(
    run_dir: Path, chosen: RunModel, copy: torch.nn.Module, inputs: dict[str, torch.Tensor], task: str, labels: list[str]
) -> float:
    """Compare the loaded model/ with the model it came from; the largest logit difference."""

    if chosen.form == ModelForm.ONNX:
        chosen = float_of(run_dir, chosen)
    if chosen.manifest:
        original = load_variant(chosen.folder).model
    else:
        original = load_for_task(resolve_source(str(chosen.folder)), task, labels)
    return same_predictions(original.eval(), copy, inputs, "safetensors model")


def _inputs(model_dir: Path, texts: list[str]) -> dict[str, torch.Tensor]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=False)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    enc = tokenizer(texts, truncation=True, max_length=64, padding=True, return_tensors="pt")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}


# --------------------------------------------------------------------------- other formats


def write_onnx(
    chosen: RunModel, stage: Path, task: str, model: torch.nn.Module | None, inputs: dict[str, torch.Tensor] | None
) -> tuple[str, float | None]:
    """onnx/model.onnx: the ONNX variant itself, or the loaded model/ exported and checked."""

    out = stage / "onnx" / "model.onnx"
    out.parent.mkdir(parents=True, exist_ok=True)
    if chosen.form == ModelForm.ONNX:
        for file in chosen.folder.glob("model.onnx*"):  # the graph and any external-data file
            shutil.copy2(file, out.parent / file.name)
        return "the variant itself, for ONNX Runtime", None
    export_onnx(model, task, out)
    diff = same_predictions(model, OnnxModel(out, task), inputs, "ONNX file")
    return "the same model for ONNX Runtime (float32)", diff


def write_gguf_files(
    stage: Path, name: str, weight_types: list[str], float_model: torch.nn.Module | None, prompts: Prompts
) -> list[GgufCheck]:
    """gguf/<name>-<type>.gguf for each weight type, each loaded back and compared with ``float_model`` (model/,
    loaded) on ``prompts``. None only for a bitsandbytes model/, whose weights write_gguf refuses first."""
    paths = {t: write_gguf(stage / "model", stage / "gguf" / f"{name}-{t}.gguf", weight_type=t) for t in weight_types}
    return measure_gguf_files(paths, stage / "model", float_model, prompts)


def _add_gguf(
    stage: Path,
    name: str,
    settings: ExportSettings,
    float_model: torch.nn.Module | None,
    prompts: Prompts,
    files: dict,
    checks: dict,
    notes: list[str],
) -> list[dict]:
    """The GGUF files, listed in ``files``, their sizes and agreements in ``checks``; their rows for the card."""
    try:
        rows = gguf_rows(stage, write_gguf_files(stage, name, settings.gguf_weight_types(), float_model, prompts), prompts)
    except UnsupportedError as err:
        notes.append(f"No GGUF file: {err}")
        return []
    for row in rows:
        files[row["file"]] = f"the same model as GGUF ({WEIGHT_TYPES[row['weight_type']]}), for llama.cpp-compatible runtimes"
        checks[f"{row['file']} bytes"] = row["bytes"]
        checks[f"{row['file']} agreement"] = row["agreement"]
        if row["f16_matrices"]:
            notes.append(
                f"In `{row['file']}`, {len(row['f16_matrices'])} matrices are f16, not {row['weight_type']}: their rows "
                f"are not a whole number of the type's 32-weight blocks ({', '.join(row['f16_matrices'])})."
            )
    return rows


def gguf_rows(stage: Path, checks: list[GgufCheck], prompts: Prompts) -> list[dict]:
    """What the card and export.json say about each GGUF file."""
    return [
        {
            "file": c.file.relative_to(stage).as_posix(),
            "weight_type": c.weight_type,
            "bytes": c.bytes,
            "agreement": round(c.agreement, 4),
            "positions": c.positions,
            "prompts": prompts.source,
            "f16_matrices": c.f16_matrices,
        }
        for c in checks
    ]


# --------------------------------------------------------------------------- the whole export


def export_model(
    run_dir: str | Path,
    settings: ExportSettings,
    out_zip: str | Path,
    *,
    metrics: dict[str, dict] | None = None,
    on_progress: ProgressFn | None = None,
) -> ExportResult:
    """Write the zip for ``settings.variant`` of the finished run in ``run_dir``.

    ``metrics``: measured rows by model name (teacher, student, variant); read from the run's
    eval.json / compare.json when not given."""

    run_dir, out_zip = Path(run_dir), Path(out_zip)
    if settings.variant == TFIDF:
        if settings.hybrid:
            raise ConfigError(
                [
                    "the hybrid option pairs a distilled model with its teacher; the TF-IDF baseline "
                    "exports alone (turn the hybrid option off)"
                ]
            )

        return export_linear_baseline(run_dir, out_zip, _zip_folder, on_progress)
    config = RunPaths(run_dir).read_config()
    task, labels = config["task"], config.get("labels") or []
    chosen = choose(run_dir, settings.variant)
    dataset = load_prepared(dataset_folder(config, run_dir))
    reports = _reports(run_dir)
    rows = metrics if metrics is not None else {r["name"]: r for report in reports for r in report["models"]}
    texts = [(r.get("text") or r.get("prompt") or "") for r in dataset.split("test")[:4]] or ["hello"]
    stage = out_zip.with_name(f".{out_zip.name}.staging")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    writes_gguf = settings.gguf and task == Task.CAUSAL_LM
    steps = 4 + (settings.onnx or chosen.form == ModelForm.ONNX) + writes_gguf + settings.hybrid
    done = iter(range(1, steps + 1))

    def say(message: str) -> None:
        if on_progress is not None:
            on_progress(item_progress("export", next(done), steps, message))

    try:
        say("writing the model folder")
        files = {
            "README.md": "this model card",
            "predict.py": 'a short example: python predict.py "text"',
            "model/": "Hugging Face folder (config, safetensors, tokenizer): AutoModelFor...from_pretrained",
        }
        notes = write_model_folder(run_dir, chosen, stage / "model", task, labels)
        checks, exported, inputs = {}, None, None
        say("checking the model folder loads and answers the same")
        if chosen.form != ModelForm.BNB:  # a bitsandbytes folder is copied as is; this machine may not even load it
            exported, inputs = load_exported(stage / "model", task, texts)
            checks["model"] = largest_logit_difference(run_dir, chosen, exported, inputs, task, labels)
        if settings.onnx or chosen.form == ModelForm.ONNX:  # an ONNX variant's graph is the variant itself
            say("writing the ONNX file")
            if chosen.form == ModelForm.BNB:
                notes.append(
                    "No ONNX file: a bitsandbytes model cannot be exported to ONNX. Export the student or "
                    "the int8 variant for ONNX Runtime."
                )
            else:
                files["onnx/model.onnx"], diff = write_onnx(chosen, stage, task, exported, inputs)
                if diff is not None:
                    checks["onnx"] = diff
        gguf = []
        if writes_gguf:
            say("writing the GGUF files and comparing each with the float model")
            gguf = _add_gguf(
                stage, chosen.name, settings, exported, agreement_prompts(dataset.split("test")), files, checks, notes
            )
        del exported  # the hybrid below loads model/ again through predict.py, as the user will
        export_settings = {
            "task": task,
            "labels": labels,
            "variant": chosen.name,
            "runtime": "onnx" if chosen.form == ModelForm.ONNX else "transformers",
            "inputs": "text" if task == Task.CAUSAL_LM and dataset.report.prompt_column is None else "questions",
            "threshold": None,
            "gguf": gguf,
        }
        (stage / EXPORT_JSON).write_text(json.dumps(export_settings, indent=2))
        shutil.copy2(Path(__file__).with_name("predict.py"), stage / "predict.py")
        hybrid = None
        if settings.hybrid:
            say("measuring the small-model-first hybrid")
            hybrid = _add_teacher(run_dir, stage, export_settings, dataset, settings.threshold, rows.get(chosen.name, {}))
            files["teacher/"] = "the teacher, asked only when the student is unsure (see below)"
            export_settings["threshold"] = hybrid["threshold"]
            (stage / EXPORT_JSON).write_text(json.dumps(export_settings, indent=2))
        files["export.json"] = "settings predict.py reads (task, labels, runtime, threshold)"
        _add_teacher_terms(run_dir, stage, files, notes)
        files = {path: about + _size_words(stage / path) for path, about in files.items()}  # where the zip's MB go
        say("writing the model card and the zip")
        answers = next((r["answers"] for r in reversed(reports) if r.get("answers")), None)
        info = _card_info(run_dir, config, chosen, dataset, files, rows, answers, hybrid, notes) | {"gguf": gguf}
        (stage / "README.md").write_text(model_card(info), encoding="utf-8")
        size = _zip_folder(stage, out_zip, root=out_zip.stem)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return ExportResult(out_zip, size, files, hybrid, notes, checks)


def _add_teacher(run_dir: Path, stage: Path, export_settings: dict, dataset, threshold: float | None, row: dict) -> dict:
    """Copy the teacher in and measure the hybrid. A text generator whose answers failed the fluency check
    never answers alone: unless the user set a threshold, it is 1 (the teacher answers everything)."""

    teacher = choose(run_dir, "teacher")
    try:
        copy_hf_folder(teacher.folder, stage / "teacher")
    except ModelLoadError as err:
        raise ConfigError([f"the hybrid option needs the teacher's files: {err}"]) from err
    why = None
    if threshold is None and row.get("fluent") is False:
        threshold = 1.0
        why = (
            f"the student's answers fail the fluency check ({row.get('fluency_note', '')}), so the teacher "
            "answers everything; set a threshold to let the student answer anyway"
        )
    return measure(stage, export_settings, dataset.split("validation"), dataset.split("test"), threshold, why)


def _teacher_entry(run_dir: Path):
    teacher = RunPaths(run_dir).teacher_info()
    return teacher, CATALOG.get(teacher.get("name", ""))


def _add_teacher_terms(run_dir: Path, stage: Path, files: dict, notes: list[str]) -> None:
    """A teacher whose licence covers what is made from it (Gemma): its terms travel in the zip."""

    entry = _teacher_entry(run_dir)[1]
    terms = terms_path(entry) if entry else None
    if entry is None or not entry.terms_notice:
        return
    if terms is not None:
        shutil.copy2(terms, stage / terms.name)
        files[terms.name] = "the teacher's licence terms, which apply to this model too"
    notes.append(entry.terms_notice)


def _card_info(
    run_dir: Path,
    config: dict,
    chosen: RunModel,
    dataset,
    files: dict,
    rows: dict[str, dict],
    answers: dict | None,
    hybrid: dict | None,
    notes: list[str],
) -> dict:
    from dataclasses import asdict

    teacher, entry = _teacher_entry(run_dir)
    order = ["teacher", "student", chosen.name, LABELS_ONLY, *BASELINES]
    shown = {name: rows[name] for name in dict.fromkeys(order) if name in rows}
    recipe = chosen.manifest.recipe if chosen.manifest else []
    return {
        "name": f"{chosen.name} (SLM Studio export)",
        "task": config["task"],
        "teacher": entry.title if entry else teacher.get("name", "unknown"),
        "licence": _licence_id(entry.licence) if entry else None,
        "licence_text": entry.licence if entry else None,
        "report": asdict(dataset.report),
        "distill": config["distill"],
        "recipe": recipe,
        "metrics": shown,
        "files": files,
        "hybrid": hybrid,
        "notes": notes,
        "quantized": any(METHODS[s["method"]].low_bit for s in recipe if s["method"] in METHODS),
        "role": chosen.name,
        "chosen": chosen.name,
        "plan": (config.get("plan") or {}).get("words", ""),
        "answers": answers,
    }


def _size_words(path: Path) -> str:
    """' (22.7 MB)': a file's or folder's size as the zip's list shows it; nothing for one written later."""
    if not path.exists():
        return ""
    size = path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return f" ({size / 1e6:.1f} MB)" if size >= 50_000 else f" ({max(1, round(size / 1e3))} kB)"


def _licence_id(text: str) -> str:
    lowered = text.lower()
    known = {"apache-2.0": "apache-2.0", "mit": "mit", "gemma": "gemma"}
    return next((tag for start, tag in known.items() if lowered.startswith(start)), "other")


def _reports(run_dir: Path) -> list[dict]:
    """The run's measurements, oldest kind first (eval.json, then compare.json, which adds the variants)."""
    return [json.loads((run_dir / name).read_text()) for name in ("eval.json", "compare.json") if (run_dir / name).exists()]


def _zip_folder(stage: Path, out_zip: Path, root: str) -> int:
    """Zip ``stage`` under one top folder; temp name, fsync, rename: never a half-written zip."""
    tmp = out_zip.with_name(f".{out_zip.name}.tmp")
    out_zip.parent.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6, allowZip64=True) as zf:
            for file in sorted(p for p in stage.rglob("*") if p.is_file()):
                zf.write(file, f"{root}/{file.relative_to(stage).as_posix()}")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, out_zip)
    finally:
        tmp.unlink(missing_ok=True)
    return out_zip.stat().st_size
