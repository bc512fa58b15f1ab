"""Where the studio keeps its files. One environment variable moves them all."""

from __future__ import annotations

from pathlib import Path

from storage.config import studio_home

__all__ = ["studio_home", "model_cache_dir", "runs_dir"]


def model_cache_dir() -> Path:
    """Teachers converted once (e.g. from GGUF) so later loads take a second, not twenty."""
    return studio_home() / "models"


def runs_dir() -> Path:
    return studio_home() / "runs"
