"""What this machine offers a worker (cores, memory, GPUs) and the tags it gets from them, read without loading
torch: the worker's main process never does."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess

from storage.workers import Capacity


def gpus_here() -> int:
    """NVIDIA GPUs this machine shows the studio (CUDA_VISIBLE_DEVICES narrows them, as it does for torch)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    folder = "/proc/driver/nvidia/gpus"
    return len(os.listdir(folder)) if os.path.isdir(folder) else 0


def gpu_names() -> str:
    """'NVIDIA H100 80GB HBM3' (distinct names, from nvidia-smi when it is there)."""
    if not shutil.which("nvidia-smi"):
        return ""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    return ", ".join(dict.fromkeys(line.strip() for line in out.splitlines() if line.strip()))


def capacity_here() -> Capacity:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 0
    gpus = gpus_here()
    return Capacity(socket.gethostname(), cores, memory, gpus, gpu_names() if gpus else "")


def tags_of(capacity: Capacity, given: list[str]) -> list[str]:
    """The machine's kind ('gpu' or 'cpu') and the tags the worker's owner gave it."""
    kind = "gpu" if capacity.gpus else "cpu"
    return sorted({kind, *(t.strip().lower() for t in given if t.strip())})
