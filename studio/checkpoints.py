"""Checkpoints of a training stage: written whole or not at all, read back newest first.

A checkpoint folder (step-N/) holds the weights, the optimizer and scheduler state and the Position;
it gets its real name only once everything in it is on disk, and the one before it is always kept, so a
crash or a power cut leaves a checkpoint to resume from. The best weights so far (best-N.safetensors)
hold only what training changes (all weights, or LoRA's).
"""

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, load_model, save_file, save_model

from studio.errors import CheckpointError

# --------------------------------------------------------------------------- how long


@dataclass
class Position:
    """Where training stands, and what early stopping knows so far."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    best_step: int = 0
    best_key: list[float] | None = None
    best_score: float | None = None
    waited: int = 0
    """Validations since the best one."""
    stopped: bool = False
    """True once training ended (budget spent or stopped early)."""


def trained(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The weights training changes (all of them, or only LoRA's); tied weights once."""
    return {name: p.detach().contiguous() for name, p in model.named_parameters() if p.requires_grad}


def save_best(folder: Path, model: torch.nn.Module, step: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".best-{step}.tmp"
    save_file({k: v.cpu() for k, v in trained(model).items()}, str(tmp))
    os.replace(tmp, folder / f"best-{step}.safetensors")
    for old in folder.glob("best-*.safetensors"):
        if old.name != f"best-{step}.safetensors":
            old.unlink(missing_ok=True)


def load_best(folder: Path, model: torch.nn.Module, step: int) -> None:
    path = folder / f"best-{step}.safetensors"
    if step and path.exists():
        device = next(model.parameters()).device
        model.load_state_dict({k: v.to(device) for k, v in load_file(str(path)).items()}, strict=False)


def save_checkpoint(
    folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: object, at: Position
) -> None:
    target = folder / f"step-{at.global_step}"
    tmp = folder / f".step-{at.global_step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_model(model, str(tmp / "model.safetensors"))
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / "optimizer.pt")
    (tmp / "state.json").write_text(json.dumps(asdict(at)))
    _fsync_folder(tmp)  # on disk before it gets its real name: a power cut leaves it whole or absent
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    _fsync_folder(folder, files=False)
    for old in checkpoints(folder)[:-2]:  # keep this one and the one before it
        shutil.rmtree(old, ignore_errors=True)


def _fsync_folder(folder: Path, files: bool = True) -> None:
    for path in folder.iterdir() if files else []:
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def checkpoints(folder: Path) -> list[Path]:
    """Finished checkpoints, oldest first."""
    done = [p for p in folder.glob("step-*") if p.name[5:].isdigit() and (p / "state.json").exists()]
    return sorted(done, key=lambda p: int(p.name[5:]))


def latest_checkpoint(folder: Path) -> Path | None:
    done = checkpoints(folder)
    return done[-1] if done else None


def checkpoint_state(folder: Path) -> Position | None:
    """Where the newest checkpoint in ``folder`` stands, or None when there is none."""
    latest = latest_checkpoint(folder)
    return Position(**json.loads((latest / "state.json").read_text())) if latest else None


def load_checkpoint(folder: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: object) -> Position:
    """The newest checkpoint that loads; an unreadable one (e.g. cut short by a crash) falls back to the
    one before it, which is always kept."""
    problems = []
    for checkpoint in reversed(checkpoints(folder)):
        try:
            load_model(model, str(checkpoint / "model.safetensors"))
            # weights_only: our own file, but never unpickle arbitrary objects.
            # map_location: written from whichever device trained; read on the CPU first (every process of a job
            # would otherwise rebuild it on GPU 0, and a machine without that GPU could not read it at all)
            state = torch.load(checkpoint / "optimizer.pt", map_location="cpu", weights_only=True)
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            return Position(**json.loads((checkpoint / "state.json").read_text()))
        except (RuntimeError, OSError, KeyError, ValueError, TypeError) as err:
            problems.append(f"{checkpoint.name}: {err}")
    if problems:
        raise CheckpointError(
            f"No checkpoint in {folder} matches this run ({'; '.join(problems)}). "
            "Start a new run, or delete the checkpoints folder to train from the start."
        )
    return Position()
