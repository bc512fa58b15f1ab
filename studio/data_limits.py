"""How much one dataset may become once unpacked and checked, and the words when a file is over it.

A file is measured while it is read (rows, bytes of the checked copy): one over a limit is refused before
the disk fills, and nothing of it is kept. A Parquet file says its size up front and is refused unread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from studio.errors import DatasetError
from studio.hosting import HostSettings


@dataclass(frozen=True)
class DatasetLimits:
    """How much one dataset may become once unpacked and checked: the operator's settings (studio/hosting.py),
    plus what is left of the user's storage quota. A file that would pass one is refused while it is being
    read, before the disk fills, and nothing of it is kept."""

    max_rows: int = HostSettings.max_dataset_rows
    max_bytes: int = HostSettings.max_dataset_mb * 1024 * 1024
    max_expansion: int = HostSettings.max_expansion
    """Times its own size a file may unpack to, beyond EXPANSION_FLOOR (a compressed Parquet file can)."""
    quota_left: int | None = None
    """Bytes the user may still store (None: no quota)."""

    @classmethod
    def from_env(cls, quota_left: int | None = None) -> DatasetLimits:
        settings = HostSettings.from_env()
        return cls(settings.max_dataset_rows, settings.max_dataset_mb * 1024 * 1024, settings.max_expansion, quota_left)

    def byte_limit(self, file_bytes: int) -> tuple[int, str]:
        """(the most bytes the checked copy may take, why that many)."""
        expansion = max(self.max_expansion * file_bytes, EXPANSION_FLOOR)
        reasons = [(self.max_bytes, "setting"), (expansion, "expansion")]
        if self.quota_left is not None:
            reasons.append((max(0, self.quota_left), "quota"))
        return min(reasons)


EXPANSION_FLOOR = 16 * 1024 * 1024


def check_parquet_size(source: Path, limits: DatasetLimits) -> None:
    """A Parquet file says how many rows and bytes it holds: a file over the limits is refused unread."""
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(source).metadata
    except Exception as err:  # pyarrow raises several types for a corrupt file
        raise DatasetError(
            f"'{source.name}' could not be read as Parquet ({err}). Export it again from the tool that made it."
        ) from err
    if meta.num_rows > limits.max_rows:
        raise DatasetError(too_many_rows(source, limits, meta.num_rows))
    unpacked = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    max_bytes, why = limits.byte_limit(source.stat().st_size)
    if unpacked > max_bytes:
        raise DatasetError(too_big(source, max_bytes, why, limits))


def too_many_rows(source: Path, limits: DatasetLimits, rows: int | None = None) -> str:
    has = f"has {rows:,} rows" if rows else f"has more than {limits.max_rows:,} rows"
    return (
        f"'{source.name}' {has}; this studio takes up to {limits.max_rows:,} per dataset (more would not "
        "train in any sensible time here). Keep a sample of the rows, or ask the administrator to raise "
        "SLM_STUDIO_MAX_DATASET_ROWS."
    )


def too_big(source: Path, max_bytes: int, why: str, limits: DatasetLimits) -> str:
    size, limit = _size(source.stat().st_size), _size(max_bytes)
    if why == "quota":
        return (
            f"'{source.name}' does not fit in what is left of your storage ({limit}). Delete old jobs in "
            "History or old datasets, or ask the administrator to raise SLM_STUDIO_USER_QUOTA_MB."
        )
    if why == "expansion":
        return (
            f"'{source.name}' ({size}) unpacks to more than {limit}, over {limits.max_expansion} times its own "
            "size: such files are made to fill a disk, not to train on. If the data is real, save it as CSV or "
            "JSON Lines (uncompressed) and upload that."
        )
    return (
        f"'{source.name}' unpacks to more than {limit}, the most one dataset may take here. Keep a sample of "
        "the rows, or ask the administrator to raise SLM_STUDIO_MAX_DATASET_MB."
    )


def too_long(row_no: int, column: str, length: int, max_chars: int) -> str:
    """A classification text over ``max_chars``: more often a wrong column or a broken file than a real text."""
    return (
        f"row {row_no}, column '{column}': {length:,} characters, over the {max_chars:,} limit. Shorten or split "
        "that text, or leave the row out."
    )


def _size(n: int) -> str:
    return f"{n / 1024**2:,.1f} MB" if n >= 1024**2 else f"{n / 1024:,.1f} KB"
