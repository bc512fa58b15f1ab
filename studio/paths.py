"""Where the studio keeps its files. One environment variable moves them all."""

from __future__ import annotations

import os
from pathlib import Path


def studio_home() -> Path:
    """Root of the local artifact folder (default ~/.slm-studio; set SLM_STUDIO_HOME to move it)."""
    return Path(os.environ.get("SLM_STUDIO_HOME", Path.home() / ".slm-studio")).expanduser()


def model_cache_dir() -> Path:
    """Teachers converted once (e.g. from GGUF) so later loads take a second, not twenty."""
    return studio_home() / "models"


def runs_dir() -> Path:
    return studio_home() / "runs"
