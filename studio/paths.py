"""Where the studio keeps its files. One environment variable moves them all."""

from __future__ import annotations

from pathlib import Path

from storage.config import studio_home

__all__ = ["studio_home", "model_cache_dir", "runs_dir", "READY", "is_saved"]

READY = "studio_ready"
"""The file a model folder gets last (studio.models.save_model), once everything else in it is written."""


def model_cache_dir() -> Path:
    """Teachers converted once (e.g. from GGUF) so later loads take a second, not twenty."""
    return studio_home() / "models"


def runs_dir() -> Path:
    return studio_home() / "runs"


def is_saved(folder: Path) -> bool:
    """Whether a model folder was written to the end."""
    return (folder / READY).exists()
