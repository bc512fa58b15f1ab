"""How a job's process starts. One process: `python -m studio.jobs.runner ID`. A job of N processes that train
together: `python -m studio.jobs.launch ID N`, which runs torchrun (torch.distributed.run, the launcher
`accelerate launch` itself uses for several GPUs) in this process, and torchrun starts N runners. Each runner
joins the group through accelerate; the main one (rank 0) reports and writes, as a job of one process does.

Why torchrun under the worker rather than forking from the job's process: every process then loads its own
models on its own GPU (a process that has touched CUDA cannot fork), a process that dies is noticed by torchrun,
which stops the others, and the same command takes machines (--nnodes) where one is not enough.

If the worker dies, this launcher dies with it, and the runners with the launcher: nothing keeps writing a job
that a restarted worker marks interrupted.
"""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path

from storage.config import StorageConfig
from studio.jobs.machine import gpus_here
from studio.jobs.process_id import die_with_parent

RUNNER = "studio.jobs.runner"
SOURCE_ROOT = Path(__file__).resolve().parents[2]


def processes_for(asked: int, gpus: int | None = None) -> int:
    """The processes a job runs in: as asked, or for 0 (Auto) one per GPU (one process on a machine without). On a
    machine with GPUs, at most one per GPU: NCCL refuses two processes on one GPU."""
    gpus = gpus_here() if gpus is None else gpus
    if asked > 0:
        return min(asked, gpus) if gpus > 0 else asked
    return gpus if gpus > 1 else 1


JOIN_S = 600.0
"""How long the machines of a job on several wait for one another before the job gives up (interrupted)."""


@dataclass(frozen=True)
class Machines:
    """A job that trains on several machines: how many, which one this is, and where they meet (host:port)."""

    count: int = 1
    rank: int = 0
    rendezvous: str = ""


def command(job_id: int, processes: int, machines: Machines = Machines()) -> list[str]:
    if processes <= 1 and machines.count == 1:
        return [sys.executable, "-m", RUNNER, str(job_id)]
    together = [str(machines.count), str(machines.rank), machines.rendezvous] if machines.count > 1 else []
    return [sys.executable, "-m", "studio.jobs.launch", str(job_id), str(processes), *together]


def address() -> str:
    """Where other machines reach this one (SLM_STUDIO_WORKER_ADDRESS, else what its host name resolves to)."""
    return os.environ.get("SLM_STUDIO_WORKER_ADDRESS") or socket.gethostbyname(socket.gethostname())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def child_env(config: StorageConfig, threads: int = 0) -> dict[str, str]:
    """The environment of a job's process: this storage, this source tree, and its share of the cores."""
    env = dict(os.environ)
    env["SLM_STUDIO_DB_URL"] = config.db_url
    env["SLM_STUDIO_DATA_DIR"] = str(config.data_dir)
    env["SLM_STUDIO_STORE_URL"] = config.store_url
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(SOURCE_ROOT), env.get("PYTHONPATH", "")] if p)
    if threads:
        env["SLM_STUDIO_THREADS"] = str(threads)
    return env


def torchrun_args(job_id: int, processes: int, machines: Machines = Machines()) -> list[str]:
    if machines.count > 1:  # several machines: the first one's address, each its machine rank (static rendezvous)
        host, _, port = machines.rendezvous.rpartition(":")
        where = [
            f"--nnodes={machines.count}",
            f"--node-rank={machines.rank}",
            f"--master-addr={host}",
            f"--master-port={port}",
            f"--rdzv-conf=timeout={int(float(os.environ.get('SLM_STUDIO_JOIN_S', JOIN_S)))}",
        ]
    else:
        where = ["--standalone"]  # one machine: torchrun finds a free port for the processes to meet on
    return [
        *where,
        f"--nproc-per-node={max(1, processes)}",
        "--max-restarts=0",  # a process that dies ends the attempt; the job resumes from its checkpoint
        "--module",
        RUNNER,
        str(job_id),
    ]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    die_with_parent()
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    job_id, processes = int(argv[0]), int(argv[1])
    machines = Machines(int(argv[2]), int(argv[3]), argv[4]) if len(argv) > 2 else Machines()
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # each runner sets its share of the cores itself
    try:
        run(get_args_parser().parse_args(torchrun_args(job_id, processes, machines)))
    except ChildFailedError as err:
        print(f"A process of job {job_id} stopped: {err}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
