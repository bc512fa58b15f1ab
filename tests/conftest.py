import os

# Tests never reach a model hub, never send analytics, and keep every file in a temp folder.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tiny_models import build_tiny_bert, build_tiny_llama  # noqa: E402


@pytest.fixture(autouse=True)
def studio_home(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_STUDIO_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("models") / "tiny-bert")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("models") / "tiny-llama")


@pytest.fixture(scope="session")
def other_tiny_llama(tmp_path_factory) -> Path:
    """Same architecture, a different tokenizer: forces sequence-level KD."""
    return build_tiny_llama(tmp_path_factory.mktemp("models") / "other-llama", vocab_size=350, layers=2)


@pytest.fixture
def samples() -> Path:
    return Path(__file__).resolve().parent.parent / "studio" / "samples"
