"""Peak memory to load a model, measured in a fresh process so nothing else is counted.

    python -m studio.load_probe model <folder> <task> ['<labels as JSON>']
    python -m studio.load_probe variant <folder>

Prints {"peak_load_mb": ...}: the peak resident memory while loading the model and answering one
short request, above what the process held once the libraries were imported (on Linux the peak is
reset first, so imports do not hide it).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

from studio.compress.variant import load_variant
from studio.models import load_for_task, load_tokenizer
from studio.teacher import resolve_source


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Linux: writing 5 to clear_refs resets the peak resident size (VmHWM) to the current one."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_mb() -> float:
    return _status_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str]) -> None:
    import torch

    for library in ("onnxruntime", "bitsandbytes"):  # their import is not the model's memory
        try:
            __import__(library)
        except ImportError:
            pass
    kind, folder = argv[0], argv[1]
    before = _status_mb("VmRSS") if _reset_peak() else None
    before = before if before is not None else _peak_mb()
    if kind == "variant":
        loaded = load_variant(folder)
        model, tokenizer = loaded.model, loaded.tokenizer
    else:
        source = resolve_source(folder)
        model = load_for_task(source, argv[2], json.loads(argv[3]))
        tokenizer = load_tokenizer(source)
    # One short request touches every weight: memory-mapped files count only once they are read.
    enc = tokenizer(["Where is my order? It has not arrived yet."], return_tensors="pt").to(model.device)
    with torch.inference_mode():
        model(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
    print(json.dumps({"peak_load_mb": round(_peak_mb() - before, 1)}))


def peak_load_mb(kind: str, folder: str | Path, task: str = "", labels: list[str] | None = None) -> float | None:
    """Run the probe in a child process (argument list, no shell); None when it could not run."""
    cmd = [sys.executable, "-m", "studio.load_probe", kind, str(folder), task, json.dumps(labels or [])]
    here = str(Path(__file__).resolve().parent.parent)  # the studio first, then what the caller's path had
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p)}
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    except subprocess.TimeoutExpired:
        return None
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)["peak_load_mb"]
    return None


if __name__ == "__main__":
    main(sys.argv[1:])
