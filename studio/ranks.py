"""The processes of one job. A job runs in one process, or in N that train together, data-parallel: torchrun
starts them (studio/jobs/launch.py) and every one runs the same job code. This module is what differs between
them, and the few moments they meet.

    rank(), world(), is_main()   from torchrun's environment (RANK, WORLD_SIZE); one process: 0, 1, True
    join()                       join the group: accelerate's PartialState (gloo on CPUs, NCCL on GPUs)
    share(n)                     the part of n rows this process works on (contiguous; the first ones get one more)
    barrier()                    wait until every process is here
    any_rank(flag)               True everywhere if it is True anywhere: a stop is decided together, at one step
    total(x)                     a number summed over the processes
    gathered(obj)                every process's object, in rank order
    main_first(fn)               the main process runs fn (it computes and saves), then the others (they read)
    on_main(fn)                  fn on the main process only, every process waiting until it is done
    alone()                      the main process on its own: inside, it meets no other (they wait elsewhere)

Only the main process writes the run's files, reports progress and talks to the job's row; the others
compute their share and leave the rest to it. In one process every function here is a no-op that costs
nothing and imports nothing (torch.distributed loads only in a group).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from functools import cache
from typing import TypeVar

T = TypeVar("T")

WAIT = timedelta(hours=12)
"""How long a process waits for the others at a meeting point: the main process alone may spend hours (e.g.
asking a teacher), while a process that died is noticed at once (its connection closes)."""


_SOLO: ContextVar[bool] = ContextVar("solo", default=False)
"""Set while the main process works alone (inside on_main, main_first or alone): it then acts as a job of one
process, so what it calls meets no other process (they are waiting, elsewhere)."""


def world() -> int:
    return 1 if _SOLO.get() else int(os.environ.get("WORLD_SIZE", "1") or 1)


@contextmanager
def alone() -> Iterator[None]:
    """The main process working on its own while the others wait: no meeting point inside."""
    token = _SOLO.set(True)
    try:
        yield
    finally:
        _SOLO.reset(token)


def rank() -> int:
    return int(os.environ.get("RANK", "0") or 0)


def local_world() -> int:
    """Processes of this job on this machine (they share its cores)."""
    return 1 if _SOLO.get() else int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1)


def is_main() -> bool:
    return rank() == 0


def join() -> None:
    """Join the job's process group (once; later calls find it joined). One process: nothing to join."""
    if world() == 1:
        return
    import torch
    from accelerate import PartialState

    # cpu=True is what makes accelerate use gloo between CPU processes instead of refusing the group
    PartialState(cpu=not torch.cuda.is_available(), timeout=WAIT)


def share(n: int) -> tuple[int, int]:
    """[start, end) of this process's part of n rows."""
    size, r = world(), rank()
    base, extra = divmod(n, size)
    start = r * base + min(r, extra)
    return start, start + base + (1 if r < extra else 0)


@cache
def _meetings():
    """The group the processes meet in for these small exchanges: gloo, over CPU tensors, also when the training
    itself goes through NCCL between GPUs (which takes GPU tensors only). Made once, by all processes together."""
    import torch.distributed as dist

    return None if dist.get_backend() == "gloo" else dist.new_group(backend="gloo", timeout=WAIT)


def barrier() -> None:
    if world() > 1:
        join()
        import torch.distributed as dist

        dist.barrier(group=_meetings())


def _reduce(values: list[float], op: str) -> list[float]:
    join()
    import torch
    import torch.distributed as dist

    tensor = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX if op == "max" else dist.ReduceOp.SUM, group=_meetings())
    return tensor.tolist()


def any_rank(flag: bool) -> bool:
    return flag if world() == 1 else _reduce([float(flag)], "max")[0] > 0


def total(value: float) -> float:
    return value if world() == 1 else _reduce([value], "sum")[0]


def gathered(obj: T) -> list[T]:
    if world() == 1:
        return [obj]
    join()
    import torch.distributed as dist

    out: list = [None] * world()
    dist.all_gather_object(out, obj, group=_meetings())
    return out


def main_first(fn: Callable[[], T]) -> T:
    """For work that computes once and keeps its result in a file: the main process does it and saves, then
    the others run the same call, which finds the file and reads it."""
    if world() == 1:
        return fn()
    if is_main():
        with alone():
            result = fn()
        barrier()
        return result
    barrier()
    return fn()


def on_main(fn: Callable[[], T]) -> T | None:
    """Writes to the run folder: the main process makes them, the others wait until they are on disk."""
    if world() == 1:
        return fn()
    result = None
    if is_main():
        with alone():
            result = fn()
    barrier()
    return result


def peer_lost(err: BaseException) -> bool:
    """Whether an error is another process of the job going away (a collective call lost its partner)."""
    if world() == 1 or not isinstance(err, RuntimeError):
        return False
    text = str(err)
    return any(word in text for word in ("gloo", "Connection reset", "Connection closed", "NCCL", "ProcessGroup"))


def leave() -> bool:
    """The end of the job's work together. A helper process is then done (True); the main process goes on alone
    (False), as a job of one process: what follows (measuring, recording) is the main process's."""
    if world() == 1:
        return False
    import torch.distributed as dist
    from accelerate.state import AcceleratorState, PartialState

    barrier()
    helper = not is_main()
    dist.destroy_process_group()
    _meetings.cache_clear()
    AcceleratorState._reset_state(reset_partial_state=True)
    PartialState._reset_state()
    os.environ.update(WORLD_SIZE="1", RANK="0", LOCAL_RANK="0", LOCAL_WORLD_SIZE="1")
    return helper


def spread(fn: Callable[[list], list], items: list) -> list:
    """``fn`` over this process's part of ``items``, the parts put back together in order on every process (one
    process: ``fn(items)``). For work every process of a job does at the same point, such as measuring."""
    if world() == 1:
        return fn(items)
    start, end = share(len(items))
    mine = fn(items[start:end]) if end > start else []
    return [x for part in gathered(mine) for x in part]
