"""Status-page users: a name, one role, a password hash (tables in models_status).

Roles, each allowed what the one before it is: ``viewer`` reads the page (needed only in
private mode), ``operator`` also acknowledges incidents, adds notes and plans maintenance,
``admin`` also manages users. Names are compared case-folded (NFKC + casefold) so
"Somchai" and "somchai" are one user; any script is fine (Lao names included).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from monitor.accounts.passwords import (
    DEFAULT_COST,
    KEY_BYTES,
    SALT_BYTES,
    ScryptCost,
    hash_password,
    needs_rehash,
    verify_password,
)
from monitor.storage.models_status import StatusSession, StatusUser

MAX_USERNAME_CHARS = 64


class Role(StrEnum):
    """What a user may do on the status page (see the module docstring)."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"


_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


def role_allows(role: Role, needed: Role) -> bool:
    """Return whether a user with ``role`` may do what needs ``needed``."""
    return _RANK[role] >= _RANK[needed]


class AccountError(ValueError):
    """A user operation that cannot be done; the message is one sentence naming the field."""


@dataclass(frozen=True, slots=True)
class User:
    """A status-page user, detached from the database (no password hash)."""

    id: int
    username: str
    role: Role
    created_at: datetime
    password_changed_at: datetime

    @classmethod
    def from_row(cls, row: StatusUser) -> User:
        """Copy a ``status_users`` row."""
        return cls(row.id, row.username, Role(row.role), row.created_at, row.password_changed_at)


def normalize_username(name: str) -> str:
    """Return the stored form of a user name: NFKC, case-folded, outer spaces removed.

    Raises AccountError when it is empty, longer than 64 characters, or holds a control
    character or inner white space.
    """
    text = unicodedata.normalize("NFKC", name).strip().casefold()
    if not text:
        raise AccountError("username: give a user name")
    if len(text) > MAX_USERNAME_CHARS:
        raise AccountError(f"username: at most {MAX_USERNAME_CHARS} characters")
    if any(ch.isspace() or unicodedata.category(ch).startswith("C") for ch in text):
        raise AccountError("username: no spaces or control characters")
    return text


def _row(session: Session, username: str) -> StatusUser | None:
    return session.scalar(select(StatusUser).where(StatusUser.username == username))


def add_user(
    session: Session,
    username: str,
    role: Role,
    password: str,
    now: datetime,
    cost: ScryptCost = DEFAULT_COST,
) -> User:
    """Create a user; the caller commits. Raises AccountError if the name is taken or bad,
    PasswordError if the password cannot be used."""
    name = normalize_username(username)
    if _row(session, name) is not None:
        raise AccountError(f"username: a user named {name!r} already exists")
    row = StatusUser(
        username=name,
        role=Role(role).value,
        password_hash=hash_password(password, cost),
        created_at=now,
        password_changed_at=now,
    )
    session.add(row)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent add of the same name
        raise AccountError(f"username: a user named {name!r} already exists") from exc
    return User.from_row(row)


def list_users(session: Session) -> list[User]:
    """Return every user, by name."""
    return [
        User.from_row(r) for r in session.scalars(select(StatusUser).order_by(StatusUser.username))
    ]


def get_user(session: Session, user_id: int) -> User | None:
    """Return the user with this id, or ``None``."""
    row = session.get(StatusUser, user_id)
    return None if row is None else User.from_row(row)


def _existing(session: Session, username: str) -> StatusUser:
    name = normalize_username(username)
    row = _row(session, name)
    if row is None:
        raise AccountError(f"username: there is no user named {name!r}")
    return row


def set_password(
    session: Session,
    username: str,
    password: str,
    now: datetime,
    cost: ScryptCost = DEFAULT_COST,
) -> None:
    """Replace a user's password and end all of their sessions; the caller commits.

    Raises AccountError for an unknown user, PasswordError for an unusable password.
    """
    row = _existing(session, username)
    row.password_hash = hash_password(password, cost)
    row.password_changed_at = now
    session.execute(delete(StatusSession).where(StatusSession.user_id == row.id))


def set_role(session: Session, username: str, role: Role) -> None:
    """Change a user's role; the caller commits. Raises AccountError for an unknown user."""
    _existing(session, username).role = Role(role).value


def delete_user(session: Session, username: str) -> None:
    """Delete a user and their sessions; the caller commits (AccountError if unknown)."""
    row = _existing(session, username)
    session.execute(delete(StatusSession).where(StatusSession.user_id == row.id))
    session.delete(row)


def _dummy_hash(cost: ScryptCost) -> str:
    salt = "A" * ((SALT_BYTES * 4 + 2) // 3)
    key = "A" * ((KEY_BYTES * 4 + 2) // 3)
    return f"scrypt${cost.log2_n}${cost.r}${cost.p}${salt}${key}"


def authenticate(
    session: Session,
    username: str,
    password: str,
    now: datetime,
    cost: ScryptCost = DEFAULT_COST,
) -> User | None:
    """Return the user if ``password`` is theirs, else ``None``; the caller commits.

    An unknown or malformed name costs one hash too (against a dummy), so the time taken
    does not tell which names exist. A hash made with an older cost is renewed.
    """
    try:
        name = normalize_username(username)
    except AccountError:
        verify_password(password, _dummy_hash(cost))
        return None
    row = _row(session, name)
    if row is None:
        verify_password(password, _dummy_hash(cost))
        return None
    if not verify_password(password, row.password_hash):
        return None
    if needs_rehash(row.password_hash, cost):
        row.password_hash = hash_password(password, cost)
        row.password_changed_at = now
    return User.from_row(row)
