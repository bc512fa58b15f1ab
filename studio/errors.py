"""Every error a user can cause, in one place.

Pipeline modules raise these; only the CLI (and later the UI) turn them into messages.
Each message says what went wrong and what to do next.
"""

from __future__ import annotations


class StudioError(Exception):
    """Base class: a problem the user can fix. The message is shown as is."""


class DatasetError(StudioError):
    """The uploaded dataset cannot be used as it is."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = problems or []
        if self.problems:
            listed = "\n".join(f"  - {p}" for p in self.problems[:20])
            more = len(self.problems) - 20
            if more > 0:
                listed += f"\n  ... and {more} more"
            message = f"{message}\n{listed}"
        super().__init__(message)


class ConfigError(StudioError):
    """One or more settings are out of range; all problems are listed at once."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        listed = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"Some settings need changing:\n{listed}")


class ModelLoadError(StudioError):
    """A teacher or student model could not be found or loaded."""


class OfflineError(ModelLoadError):
    """A hub model was asked for while the machine is offline."""


class CheckpointError(StudioError):
    """A checkpoint to resume from is missing or does not match the run."""


class UnsupportedError(StudioError):
    """A compression method cannot run on this hardware or this model; other variants still can."""


class AccessError(StudioError):
    """Not logged in, or asking for what belongs to someone else."""


class QuotaError(StudioError):
    """The user's stored files have reached their storage quota."""


class StopRequested(Exception):  # noqa: N818 - a request, not an error: not a StudioError on purpose
    """Raised by a progress callback to stop a job after the step under way (it is checkpointed first)."""
