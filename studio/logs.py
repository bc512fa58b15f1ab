"""Where logs go. What libraries say goes to a log, never to the user's screen.

bitsandbytes warns when it is imported on a CPU with AVX-512 BF16 ("Failed to load CPU gemm_4bit_forward from
kernels-community ...") and at every forward of an 8-bit model ("MatMul8bitLt: inputs will be cast ..."):
internals a user can do nothing about, and that bury the studio's own messages. Each entry point calls
``quiet_libraries`` before anything imports them; a job adds its own log with ``job_log``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

JOB_LOG = "job.log"
"""In a job's folder: what its process printed, library warnings and the traceback of an unexpected error."""
LIBRARIES = ("bitsandbytes", "kernels")
"""Loggers whose records go to the log file only (their children too)."""
FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


class Once(logging.Filter):
    """Each distinct message once: an 8-bit model warns at every forward."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[str, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.getMessage())
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


def quiet_libraries(to: Path | None = None) -> logging.Handler:
    """Send the libraries' records to the file ``to`` (appended, made when first written), each message once;
    with no file, to nowhere. Replaces where they went before; returns the new handler."""
    if to is not None:
        to.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(to, encoding="utf-8", delay=True)
        handler.setFormatter(logging.Formatter(FORMAT))
    else:
        handler = logging.NullHandler()
    handler.addFilter(Once())
    for name in LIBRARIES:
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
        logger.setLevel(logging.INFO)
    return handler


@contextmanager
def job_log(path: Path) -> Iterator[None]:
    """While a job runs in this process: the libraries' records go to the job's own log, then back."""
    before = {name: (logging.getLogger(name).handlers, logging.getLogger(name).propagate) for name in LIBRARIES}
    handler = quiet_libraries(path)
    try:
        yield
    finally:
        handler.close()
        for name, (handlers, propagate) in before.items():
            logging.getLogger(name).handlers, logging.getLogger(name).propagate = handlers, propagate


def quiet_terminal(to: Path | None) -> None:
    """A command's terminal shows the studio's own output: the libraries' records go to ``to``, and transformers'
    load reports and shard bars (which drown out the studio's progress) are off. Call it before anything else."""
    from transformers.utils import logging as hf_logging  # here, not above: the worker never loads transformers

    quiet_libraries(to)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
