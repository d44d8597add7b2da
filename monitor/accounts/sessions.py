"""Server-side login sessions for the status page, each with its CSRF token.

The browser holds a random token (256 bits) in an HttpOnly cookie; the database holds only
its SHA-256, the user and a second random token, the session's CSRF token, which every
form of the session must send back (the synchronizer-token pattern of the OWASP CSRF
Prevention Cheat Sheet). A session ends at logout, after :data:`IDLE_TIMEOUT` without use,
after :data:`ABSOLUTE_TIMEOUT` whatever the use, or when the user's password changes.
Expired rows are deleted by :func:`prune_sessions`, so the table stays bounded.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from monitor.accounts.users import User
from monitor.storage.models_status import StatusSession, StatusUser

IDLE_TIMEOUT = timedelta(hours=12)
ABSOLUTE_TIMEOUT = timedelta(days=7)
TOUCH_EVERY = timedelta(minutes=5)
"""``last_seen_at`` is written at most this often (a page view need not write)."""


@dataclass(frozen=True, slots=True)
class ActiveSession:
    """A valid login session: its user and the CSRF token its forms must carry."""

    token_sha256: str
    user: User
    csrf_token: str
    last_seen_at: datetime
    expires_at: datetime


def token_digest(token: str) -> str:
    """Return the SHA-256 (hex) under which a cookie token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def start_session(session: Session, user: User, now: datetime) -> tuple[str, ActiveSession]:
    """Open a session for ``user``; return the cookie token and the session. Caller commits."""
    token = secrets.token_urlsafe(32)
    row = StatusSession(
        token_sha256=token_digest(token),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
        expires_at=now + ABSOLUTE_TIMEOUT,
    )
    session.add(row)
    session.flush()
    return token, ActiveSession(row.token_sha256, user, row.csrf_token, now, row.expires_at)


def find_session(session: Session, token: str, now: datetime) -> ActiveSession | None:
    """Return the live session whose cookie token is ``token``; ``None`` if none or ended."""
    if not token or len(token) > 200:
        return None
    found = session.execute(
        select(StatusSession, StatusUser)
        .join(StatusUser, StatusUser.id == StatusSession.user_id)
        .where(StatusSession.token_sha256 == token_digest(token))
    ).one_or_none()
    if found is None:
        return None
    row, user_row = found
    if now >= row.expires_at or now - row.last_seen_at >= IDLE_TIMEOUT:
        return None
    return ActiveSession(
        row.token_sha256, User.from_row(user_row), row.csrf_token, row.last_seen_at, row.expires_at
    )


def touch_session(session: Session, active: ActiveSession, now: datetime) -> bool:
    """Record use of ``active`` if not recorded within :data:`TOUCH_EVERY`; caller commits.

    Returns whether a write was made.
    """
    if now - active.last_seen_at < TOUCH_EVERY:
        return False
    row = session.get(StatusSession, active.token_sha256)
    if row is None:
        return False
    row.last_seen_at = now
    return True


def end_session(session: Session, token: str) -> None:
    """Delete the session of cookie token ``token`` (nothing if unknown); caller commits."""
    session.execute(delete(StatusSession).where(StatusSession.token_sha256 == token_digest(token)))


def prune_sessions(session: Session, now: datetime) -> int:
    """Delete ended sessions (expired or idle); return how many. Caller commits."""
    result = session.execute(
        delete(StatusSession).where(
            or_(StatusSession.expires_at <= now, StatusSession.last_seen_at <= now - IDLE_TIMEOUT)
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
