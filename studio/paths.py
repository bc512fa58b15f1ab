"""Where the studio keeps its files. One environment variable moves them all."""

from __future__ import annotations

import os
from pathlib import Path

from storage.config import studio_home

__all__ = ["studio_home", "model_cache_dir", "machine_cache", "runs_dir", "READY", "is_saved"]

READY = "studio_ready"
"""The file a model folder gets last (studio.models.save_model), once everything else in it is written."""


def model_cache_dir() -> Path:
    """Teachers converted once (e.g. from GGUF) so later loads take a second, not twenty."""
    return studio_home() / "models"


def machine_cache() -> Path:
    """What the studio learnt of this machine, not of a user's work (e.g. its CPU's rated power): SLM_STUDIO_CACHE,
    else the user's cache folder ($XDG_CACHE_HOME or ~/.cache) / slm-studio. Deleting it costs a look-up again."""
    found = os.environ.get("SLM_STUDIO_CACHE")
    if found:
        return Path(found).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "slm-studio"


def runs_dir() -> Path:
    return studio_home() / "runs"


def is_saved(folder: Path) -> bool:
    """Whether a model folder was written to the end."""
    return (folder / READY).exists()
