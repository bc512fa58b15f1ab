"""Who runs a job, precisely enough to tell later whether that process still exists.

A job's `worker` column reads `host#boot:pid.start`: the machine (its host name and this boot), the
process id and the process's start time in clock ticks since boot. A pid reused by a later process,
or a machine rebooted since, no longer matches, so a dead job is never mistaken for a live one.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path


def machine() -> str:
    boot = Path("/proc/sys/kernel/random/boot_id")
    return socket.gethostname() + (f"#{boot.read_text().strip()[:8]}" if boot.exists() else "")


def _stat_fields(pid: int) -> list[str] | None:
    try:  # the command name (field 2) may hold spaces; everything after its ')' splits cleanly
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def process_tag(pid: int | None = None) -> str:
    pid = pid or os.getpid()
    fields = _stat_fields(pid)
    return f"{pid}.{fields[19]}" if fields and len(fields) > 19 else str(pid)


def worker_name(pid: int | None = None) -> str:
    return f"{machine()}:{process_tag(pid)}"


def process_alive(tag: str) -> bool:
    """Whether the process a tag names is still running (a zombie counts as dead)."""
    pid_text, _, start = tag.partition(".")
    if not pid_text.isdigit():
        return False
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, but another user's: the start time below still tells whether it is ours
    fields = _stat_fields(pid)
    if fields is None:
        return True  # no /proc here: the pid existing is all we can know
    return fields[0] != "Z" and (not start or (len(fields) > 19 and fields[19] == start))


def die_with_parent() -> None:
    """A worker killed with -9 cannot stop its children; they notice and stop too, so a restarted worker
    finds the job's process gone and marks the job interrupted instead of two processes writing one job.
    (A job of several processes: the launcher watches the worker, each process the launcher.)"""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(137)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
