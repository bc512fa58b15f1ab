import os

# Tests never reach a model hub, never send analytics, and keep every file in a temp folder.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
# What the studio learns of this machine (studio.paths.machine_cache) is learnt once per test session, in a temp folder
os.environ["SLM_STUDIO_CACHE"] = __import__("tempfile").mkdtemp(prefix="slm-studio-test-cache-")

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
SAMPLES = Path(__file__).resolve().parent.parent / "studio" / "samples"

from s3_server import S3Server  # noqa: E402

from postgres_server import PostgresServer, server_bin  # noqa: E402
from tiny_models import build_tiny_bert, build_tiny_llama, small_config  # noqa: E402


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


@pytest.fixture(scope="session")
def cls_run(tiny_bert, tmp_path_factory) -> Path:
    """A finished classification run (400 support tickets); tests add variants with names of their own."""
    from studio.dataset import prepare_dataset
    from studio.distill import distill

    tmp = tmp_path_factory.mktemp("cls")
    lines = (SAMPLES / "support_tickets.csv").read_text(encoding="utf-8").splitlines()[:401]
    (tmp / "t.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    distill(small_config(teacher=str(tiny_bert)), prepare_dataset(tmp / "t.csv", tmp / "ds"), tmp / "run")
    return tmp / "run"


@pytest.fixture(scope="session")
def lm_run(tiny_llama, tmp_path_factory) -> Path:
    """A finished causal-LM run on the shop FAQ sample."""
    from studio.dataset import DatasetOptions, prepare_dataset
    from studio.distill import distill

    tmp = tmp_path_factory.mktemp("lm")
    dataset = prepare_dataset(SAMPLES / "shop_faq.jsonl", tmp / "faq", DatasetOptions(test_fraction=0.1))
    distill(small_config(teacher=str(tiny_llama), student_layers=3, batch_size=16, max_length=64), dataset, tmp / "run")
    return tmp / "run"


@pytest.fixture
def samples() -> Path:
    return Path(__file__).resolve().parent.parent / "studio" / "samples"


@pytest.fixture(scope="session")
def postgres_server():
    """One real PostgreSQL server for the whole run (Debian's postgresql package; .ci/run installs it)."""
    if server_bin() is None:
        pytest.skip("PostgreSQL server binaries are not installed (apt-get install postgresql)")
    server = PostgresServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'studio.db'}"
    return request.getfixturevalue("postgres_server").new_database()


@pytest.fixture(scope="session")
def s3_server():
    """moto's S3 server over HTTP for the whole session (each test takes a fresh bucket)."""
    server = S3Server().start()
    yield server
    server.stop()


@pytest.fixture
def store_url(s3_server) -> str:
    return s3_server.new_bucket()


def pytest_sessionfinish(session, exitstatus):
    """The session's machine cache (made above) goes with the session."""
    import shutil

    shutil.rmtree(os.environ["SLM_STUDIO_CACHE"], ignore_errors=True)
