"""Library warnings go to a log, never to the user's screen; each once."""

import logging
import os
import subprocess
import sys
from pathlib import Path

from studio.logs import job_log, quiet_libraries

ROOT = Path(__file__).resolve().parent.parent


def test_a_command_shows_the_studio_and_logs_what_bitsandbytes_says(tmp_path):
    """On a CPU with AVX-512 BF16 bitsandbytes warns at import; `methods` imports it. The screen shows only the
    studio's list; the warning, where this CPU makes one, is in the studio's log."""
    home = tmp_path / "home"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SLM_STUDIO_HOME": str(home)}
    done = subprocess.run([sys.executable, "-m", "studio", "methods"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "bnb-nf4" in done.stdout
    assert "bitsandbytes" not in done.stderr and "gemm_4bit" not in done.stderr + done.stdout
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    log = home / "logs" / "studio.log"
    if "avx512_bf16" in flags:
        assert "gemm_4bit_forward" in log.read_text()


def test_a_job_log_takes_each_library_message_once_then_gives_them_back(tmp_path, capfd):
    quiet_libraries(tmp_path / "studio.log")
    library = logging.getLogger("bitsandbytes.autograd._functions")
    with job_log(tmp_path / "job.log"):
        for _ in range(3):  # an 8-bit model warns at every forward
            library.warning("MatMul8bitLt: inputs will be cast from %s to float16 during quantization", "float32")
    library.warning("after the job")
    assert (tmp_path / "job.log").read_text().count("MatMul8bitLt") == 1
    assert "after the job" in (tmp_path / "studio.log").read_text()
    assert "MatMul8bitLt" not in (tmp_path / "studio.log").read_text()
    out, err = capfd.readouterr()
    assert "MatMul8bitLt" not in out + err and "after the job" not in out + err
