"""Errors a user can cause through storage, each with a message that says what to do next."""

from __future__ import annotations


class StorageError(Exception):
    """Base class: shown to the user as is."""


class NotFoundError(StorageError):
    """No such record for this user (also what another user's record looks like: we never say it exists)."""


class JobStateError(StorageError):
    """The job is not in a state that allows this (e.g. resuming a finished job)."""


class ArtifactError(StorageError):
    """A file in the artifact store is missing, altered, or would land outside the store."""


class DatabaseError(StorageError):
    """The database cannot be reached or its schema is from a newer studio."""


class JobLostError(StorageError):
    """This process's job was taken from it (marked interrupted, then resumed elsewhere): stop writing."""

    def __init__(self, job_id: int) -> None:
        super().__init__(
            f"Job {job_id} is no longer run by this process (it was marked interrupted and may "
            "have been resumed elsewhere); this process stops without writing more."
        )
