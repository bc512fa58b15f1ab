"""Energy a piece of work uses, through CodeCarbon, and what that figure rests on.

    EnergyMeter     with EnergyMeter() as meter: work()   ->   meter.reading: Energy (Wh, seconds, basis)
    metered(work)   work's result, the seconds it took, and the energy of a span long enough to read
    machine_cost    what 1,000 answers (or a training run) cost at a price per hour of the machine

Offline only: CodeCarbon's OfflineEmissionsTracker, no API and no network, nothing written to disk, its log quiet.
It measures the whole machine (a server answering or training draws all of it).

Where the machine has power counters, CodeCarbon reads them: Intel RAPL under /sys/class/powercap, an NVIDIA GPU
through NVML, Apple's powermetrics. Elsewhere (most VMs and containers) it estimates: the CPU's load times its rated
power (TDP) from CodeCarbon's table, or a default when the CPU is not in it, and memory from its size (memory is
always an estimate). Every reading carries its basis in words, so an estimate never passes for a measurement.

Short work: CodeCarbon adds up energy at each reading (every ``READ_EVERY_S`` here, and once more at stop) from
counters or from the power it sampled, but skips the reading at stop when the last one is under 0.05 s old, and
CPU load is counted in 10 ms ticks. A span of a few milliseconds therefore reads as nothing or as noise. ``metered``
repeats the work until it has run ``MIN_SECONDS``; a per-answer figure then comes from the average power over that
span times the time the answers take (``Energy.over``), never from the raw energy of a span too short to read.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from studio.paths import machine_cache

T = TypeVar("T")

READ_EVERY_S = 1.0
"""CodeCarbon's ``measure_power_secs``: energy added up every second (its default, 15 s, is meant for hour-long jobs)."""
MIN_SECONDS = 0.1
"""The shortest span ``metered`` reads: twice CodeCarbon's 0.05 s, 20 ticks of CPU time on two cores (about 5 % of
error, well inside an estimate's own); every model measured adds at most this to an evaluation."""
COUNTRY = "USA"
"""CodeCarbon's offline tracker needs a country for its carbon intensity; the studio reports energy, which does not
depend on it."""
PRICE_PER_HOUR = 0.10
"""USD an hour: about what a small CPU cloud server (2-4 vCPUs) costs. The user sets their own in the Compare step."""
RAPL = Path("/sys/class/powercap/intel-rapl")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Energy:
    """What one span of work used, and how that is known."""

    wh: float
    seconds: float
    basis: str
    """In words: 'measured: ...', 'partly measured: ...' or 'estimated, not measured: ...', and from what."""
    from_counters: bool
    """The CPU's (and GPU's) power came from counters; memory is an estimate in any case."""

    @property
    def watts(self) -> float:
        """The average power over the span."""
        return self.wh * 3600 / self.seconds if self.seconds > 0 else 0.0

    def over(self, seconds: float) -> float:
        """Wh at this span's average power for ``seconds`` (e.g. the time 1,000 answers take)."""
        return self.watts * seconds / 3600

    def to_dict(self) -> dict:
        return {"wh": self.wh, "seconds": self.seconds, "basis": self.basis, "from_counters": self.from_counters}


class EnergyMeter:
    """``with EnergyMeter() as meter: work()``; then ``meter.reading`` (None when CodeCarbon could not measure: it
    never stops the work). The first meter of a process looks the hardware up (not counted): about 2 s the first time
    on a machine, a few milliseconds once its CPU's rating is remembered (``remembered_rating``)."""

    def __init__(self) -> None:
        self.reading: Energy | None = None
        self._tracker = None

    def __enter__(self) -> EnergyMeter:
        # imported here: only the processes that measure load it (and pandas with it), not the CLI or the worker
        from codecarbon import OfflineEmissionsTracker

        logging.getLogger("codecarbon").setLevel(logging.ERROR)  # before it logs its start-up lines
        self._tracker = OfflineEmissionsTracker(
            country_iso_code=COUNTRY,
            output_methods=[],  # no emissions.csv, no API
            log_level="error",
            measure_power_secs=READ_EVERY_S,
            tracking_mode="machine",
            allow_multiple_runs=True,  # no lock file; several meters may run in one job
        )
        with remembered_rating():
            self._tracker.start()
        return self

    def __exit__(self, *failure: object) -> None:
        self._tracker.stop()  # CodeCarbon swallows its own errors: a failed reading leaves no data behind
        data = getattr(self._tracker, "final_emissions_data", None)
        if data is None:
            log.warning("CodeCarbon could not measure this span; its energy is left out")
            return
        # CodeCarbon keeps how it measured in its hardware objects only (its own start-up log reads them too)
        basis, counters = basis_of(getattr(self._tracker, "_hardware", []))
        self.reading = Energy(data.energy_consumed * 1000, data.duration, basis, counters)


@dataclass(frozen=True)
class Rating:
    """What CodeCarbon's table says of this machine's CPU: its name and rated power (W), or None if not in it."""

    model: str
    tdp: float | None


@contextmanager
def remembered_rating() -> Iterator[None]:
    """CodeCarbon looks up the CPU's rated power once per process: it starts a Python child to read the CPU's name
    (py-cpuinfo) and fuzzy-matches it against a table of 3,000 CPUs, about 2 s, paid again by every job's process.
    The answer depends only on the machine, so it is kept in the machine's cache (studio.paths) the first time and
    handed to CodeCarbon's own per-process cache after that. A machine with power counters (RAPL) never asks for it."""
    from codecarbon.core import hardware_cache

    if hardware_cache._tdp is not None:  # this process has it already
        yield
        return
    key = _machine_key()
    known = _ratings().get(key)
    if known:
        hardware_cache._tdp = Rating(known["model"], known["tdp"])
    yield
    found = hardware_cache._tdp
    if known or found is None:
        return
    ratings = {**_ratings(), key: {"model": found.model, "tdp": found.tdp}}
    path = _ratings_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(ratings, indent=1))
        os.replace(tmp, path)
    except OSError as err:  # a read-only cache: looked up again next time, nothing else changes
        log.debug("could not keep the CPU's rating: %s", err)


def _ratings_path() -> Path:
    return machine_cache() / "cpu-ratings.json"


def _ratings() -> dict:
    try:
        found = json.loads(_ratings_path().read_text())
        return found if isinstance(found, dict) else {}
    except (OSError, ValueError):
        return {}


def _machine_key() -> str:
    """This CPU as the OS names it, its thread count and CodeCarbon's version (a newer table may know it)."""
    from importlib.metadata import version

    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            name = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), name)
    except OSError:
        pass
    return f"{name}|{os.cpu_count()} threads|codecarbon {version('codecarbon')}"


def metered(work: Callable[[], T], at_least_s: float = MIN_SECONDS) -> tuple[T, float, Energy | None]:
    """(``work``'s result, the seconds its first run took, the energy of the whole measured span). The work runs
    again (its results dropped) until the span has lasted ``at_least_s``, so that the average power is readable."""
    with EnergyMeter() as meter:
        started = time.perf_counter()
        result = work()
        seconds = time.perf_counter() - started
        while time.perf_counter() - started < at_least_s:
            work()
    return result, seconds, meter.reading


def machine_cost(seconds: float, price_per_hour: float) -> float:
    """What ``seconds`` of the machine cost (1,000 answers, a training run): the hours times the price of one."""
    return seconds / 3600 * price_per_hour


def wh_text(wh: float) -> str:
    return f"{wh:.3g} Wh"


def money(usd: float) -> str:
    """'$0.10', '$0.0012', 'under $0.0001': enough digits that a small cost does not read as nothing."""
    return f"${usd:.2f}" if usd >= 0.01 else f"${usd:.4f}" if usd >= 1e-4 else "under $0.0001"


# --------------------------------------------------------------------------- the basis, in words

COUNTERS = {
    "intel_rapl": "its RAPL power counters",
    "windows_emi": "Windows' energy meter (RAPL)",
    "intel_power_gadget": "Intel Power Gadget",
}


def basis_of(hardware: list) -> tuple[str, bool]:
    """('estimated, not measured: CPU ..., memory ...', False) from a tracker's hardware objects after a run."""
    parts = sorted((_part(h) for h in hardware), key=lambda part: not part[2])  # CPU and GPU first, memory last
    measured = [words for words, counted, compute in parts if counted]
    compute = [counted for _, counted, is_compute in parts if is_compute]
    words = "; ".join(words for words, _, _ in parts) or "nothing CodeCarbon could read"
    if compute and all(compute):
        return ("measured: " if len(measured) == len(parts) else "partly measured: ") + words, True
    if measured:
        return "partly measured: " + words, False
    return f"estimated, not measured: {words}; {_no_counters()}", False


def _part(h) -> tuple[str, bool, bool]:
    """(words, read from counters, is it a CPU or GPU) of one CodeCarbon hardware object."""
    kind = type(h).__name__
    if kind == "RAM":
        forced = getattr(h, "_force_ram_power", None)
        return (
            (f"memory {forced:g} W as set" if forced is not None else f"memory {h.total_power().W:.0f} W from its size"),
            False,
            False,
        )
    if kind == "GPU":
        return "GPU from its driver's power readings (NVML or AMD SMI)", True, True
    if kind == "AppleSiliconChip":
        return f"{h.chip_part} from powermetrics", True, True
    if kind == "Raspberry":
        return f"{h.chip_part} from the board's power chip", True, h.chip_part == "CPU"
    if kind != "CPU":
        return f"{kind} (unknown to the studio)", False, True
    mode, tdp = getattr(h, "_mode", ""), getattr(h, "_tdp", None)
    if mode in COUNTERS:
        return f"CPU from {COUNTERS[mode]}", True, True
    rated = f"{tdp:g} W" + _whose_rating(h)
    if mode == "cpu_load":
        return f"CPU from the machine's load × {rated}", False, True
    return f"CPU at half of {rated}", False, True


def _whose_rating(h) -> str:
    from codecarbon.core.cpu import DEFAULT_POWER_PER_CORE
    from codecarbon.core.util import count_cpus

    if getattr(h, "_is_generic_tdp", False):
        return " (CodeCarbon's generic figure: it could not tell this CPU's rated power)"
    if h._tdp == count_cpus() * DEFAULT_POWER_PER_CORE:
        return f" (CodeCarbon's default of {DEFAULT_POWER_PER_CORE} W a thread: this CPU's rated power is not in its table)"
    return f" (the rated power of a {h.get_model()}, from CodeCarbon's table)"


def _no_counters() -> str:
    if RAPL.exists():
        return f"the power counters under {RAPL} are there but not readable by this user"
    return "this machine exposes no power counters (no Intel RAPL under /sys/class/powercap, as in most VMs)"
