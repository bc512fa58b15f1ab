"""The Docker image, checked without a Docker engine: it installs and starts exactly as the README says,
every setting it passes is one the studio reads, and a misconfigured start says what to fix.
(test_security.py starts the same command with the image's environment and attacks it over HTTP.)"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()
README = (ROOT / "README.md").read_text()


def instructions(name: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [line.split(None, 1)[1] for line in joined.splitlines() if line.upper().startswith(name + " ")]


def test_image_installs_and_starts_like_the_readme():
    start = next(line.strip() for line in README.splitlines() if line.strip().endswith("python -m studio ui"))
    assert instructions("CMD") == ['["python", "-m", "studio", "ui"]']
    installs = " ".join(instructions("RUN"))
    for step in re.findall(r"pip install [^&]+", start):
        assert step.strip() in installs, step  # the same requirement files, the same flags
    assert "torch==2.13.0" in installs  # a CPU torch from the chosen index, the README's pin


def test_image_is_multi_stage_unprivileged_and_without_secrets():
    assert len(instructions("FROM")) >= 2 and "AS build" in instructions("FROM")[0]
    assert instructions("USER") == ["studio"]
    env = " ".join(instructions("ENV"))
    assert not re.search(r"PASSWORD|SECRET|TOKEN", env, re.IGNORECASE)
    assert "/healthz" in " ".join(instructions("HEALTHCHECK"))
    assert instructions("VOLUME") == ['["/data"]'] and "SLM_STUDIO_HOME=/data" in env
    assert "ARG TORCH_INDEX" in DOCKERFILE  # the CUDA build argument


def test_every_setting_the_image_passes_is_read_by_the_studio():
    code = "".join(p.read_text() for folder in ("studio", "storage") for p in (ROOT / folder).rglob("*.py"))
    names = set(re.findall(r"(SLM_STUDIO_[A-Z_]+)=", DOCKERFILE))
    assert {"SLM_STUDIO_HOME", "SLM_STUDIO_AUTH", "SLM_STUDIO_HOST", "SLM_STUDIO_PORT"} <= names
    for name in names:
        assert f'"{name}"' in code, f"{name} is set by the image but read nowhere"


def run_ui(env: dict, studio_home: Path) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("SLM_STUDIO_")}
    return subprocess.run(
        [sys.executable, "-m", "studio", "ui", "--no-worker", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**base, "PYTHONPATH": str(ROOT), "SLM_STUDIO_HOME": str(studio_home), **env},
    )


def test_a_misconfigured_start_says_what_to_fix(studio_home):
    no_users = run_ui({"SLM_STUDIO_AUTH": "users"}, studio_home)
    assert no_users.returncode == 2 and "there are no users yet" in no_users.stderr
    assert "SLM_STUDIO_ADMIN_USER" in no_users.stderr and "Traceback" not in no_users.stderr
    bad_mode = run_ui({"SLM_STUDIO_AUTH": "ldap"}, studio_home)
    assert bad_mode.returncode == 2 and "SLM_STUDIO_AUTH is 'ldap'" in bad_mode.stderr
    weak = run_ui(
        {"SLM_STUDIO_AUTH": "users", "SLM_STUDIO_ADMIN_USER": "admin", "SLM_STUDIO_ADMIN_PASSWORD": "short"}, studio_home
    )
    assert weak.returncode == 2 and "use at least 10" in weak.stderr
    bad_limit = run_ui({"SLM_STUDIO_MAX_UPLOAD_MB": "lots"}, studio_home)
    assert bad_limit.returncode == 2 and "SLM_STUDIO_MAX_UPLOAD_MB is 'lots'" in bad_limit.stderr


def test_every_bad_server_setting_is_named_at_once():
    from studio.errors import ConfigError
    from studio.hosting import HostSettings

    with pytest.raises(ConfigError) as bad:
        HostSettings.from_env(
            {
                "SLM_STUDIO_LOGIN_LIMIT_ACCOUNT": "lots",
                "SLM_STUDIO_ALLOWED_ORIGINS": "evil.com",
                "SLM_STUDIO_SESSION_HOURS": "0",
                "SLM_STUDIO_USER_QUOTA_MB": "-5",
            }
        )
    said = str(bad.value)
    for name in (
        "SLM_STUDIO_LOGIN_LIMIT_ACCOUNT is 'lots'",
        "SLM_STUDIO_ALLOWED_ORIGINS is 'evil.com'",
        "SLM_STUDIO_SESSION_HOURS is '0.0'",
        "SLM_STUDIO_USER_QUOTA_MB is '-5'",
    ):
        assert name in said
    good = HostSettings.from_env(
        {
            "SLM_STUDIO_AUTH": "Users",
            "SLM_STUDIO_ALLOWED_ORIGINS": "https://a.example, https://b.example/",
            "SLM_STUDIO_LOGIN_LIMIT_ADDRESS": "3/minute;10/hour",
        }
    )
    assert good.hosted and good.allowed_origins == ("https://a.example", "https://b.example")


def test_stopping_the_studio_stops_its_own_worker(studio_home, tmp_path):
    """SIGTERM (docker stop, systemd, kill) ends `studio ui` and, after its safe stop, the worker it started."""
    import signal
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = {k: v for k, v in os.environ.items() if not k.startswith("SLM_STUDIO_")}
    env = {**base, "PYTHONPATH": str(ROOT), "SLM_STUDIO_HOME": str(studio_home)}
    with open(tmp_path / "ui.log", "wb") as log:
        ui = subprocess.Popen(
            [sys.executable, "-m", "studio", "ui", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    children: list[str] = []
    try:
        for _ in range(240):
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        children = Path(f"/proc/{ui.pid}/task/{ui.pid}/children").read_text().split()
        (worker,) = [int(c) for c in children if b"worker" in Path(f"/proc/{c}/cmdline").read_bytes()]
        ui.send_signal(signal.SIGTERM)
        assert ui.wait(timeout=150) == 0
        assert not Path(f"/proc/{worker}").exists(), "the worker outlived the studio that started it"
    finally:
        if ui.poll() is None:
            ui.kill()
        for child in children:
            if Path(f"/proc/{child}").exists():
                os.kill(int(child), signal.SIGKILL)  # never leave a worker behind, even when the test fails
