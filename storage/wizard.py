"""Where each user is in the browser's wizard: what they chose, kept in the database, not in a page.

A reload, a second tab or another machine reads the same row, so the wizard opens on the teacher, dataset and
preset the user last chose. Only the keys in KEYS are kept; a value that no longer exists (a deleted dataset)
is the reader's to drop.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from storage.db import Database
from storage.jobs import Viewer
from storage.tables import WizardState, utcnow

KEYS = ("teacher", "dataset_id", "preset")
"""teacher: the teacher spec (catalog key, folder or hub id); dataset_id: a checked dataset of theirs;
preset: the Distill step's preset."""


def wizard_of(s: Session, viewer: Viewer) -> dict[str, Any]:
    """This user's choices so far ({} before the first)."""
    row = s.get(WizardState, viewer.user_id)
    return dict(row.state) if row else {}


def remember(db: Database, viewer: Viewer, **choices: Any) -> None:
    """Keep these choices for this user (None forgets one); other keys are a programming error."""
    unknown = set(choices) - set(KEYS)
    if unknown:
        raise ValueError(f"not wizard keys: {sorted(unknown)}")
    with db.session() as s:
        row = s.get(WizardState, viewer.user_id)
        state = {**(row.state if row else {}), **choices}
        state = {k: v for k, v in state.items() if v is not None}
        if row is None:
            s.add(WizardState(user_id=viewer.user_id, state=state))
        else:
            row.state, row.updated_at = state, utcnow()
