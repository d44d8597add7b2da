"""Hash and check passwords with scrypt (Python's standard library, RFC 7914).

A stored hash is self-describing: ``scrypt$<log2 N>$<r>$<p>$<salt b64>$<key b64>``, so the
cost can be raised later and old hashes still verify (:func:`needs_rehash` says which to
renew at the next login). The default cost follows the OWASP Password Storage Cheat Sheet
for scrypt: N = 2^17, r = 8, p = 1 (128 MiB of memory, a few tenths of a second per hash).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import unicodedata
from dataclasses import dataclass

SALT_BYTES = 16
KEY_BYTES = 32
MAX_PASSWORD_CHARS = 1024
MIN_NEW_PASSWORD_CHARS = 8
"""Shortest password a person may set (NIST SP 800-63B section 5.1.1.2: at least 8)."""
"""Longer passwords are refused (hashing a megabyte per attempt would be a denial of service)."""


@dataclass(frozen=True, slots=True)
class ScryptCost:
    """scrypt's cost parameters: N = 2**log2_n, block size r, parallelism p."""

    log2_n: int = 17
    r: int = 8
    p: int = 1

    @property
    def memory_bytes(self) -> int:
        """Memory one hash needs: 128 * r * N bytes."""
        return 128 * self.r * (1 << self.log2_n)


DEFAULT_COST = ScryptCost()


class PasswordError(ValueError):
    """A password that cannot be used (empty, too long); the message says which."""


def check_new_password(password: str) -> None:
    """Refuse a password a person chooses that is shorter than :data:`MIN_NEW_PASSWORD_CHARS`.

    Only where people set passwords (``linkwatch user add`` and ``passwd``); hashing and
    checking accept any non-empty password, so an older, shorter one still logs in.

    Raises:
        PasswordError: the password is empty or too short; the message says the minimum.
    """
    if len(password) < MIN_NEW_PASSWORD_CHARS:
        raise PasswordError(
            f"the password must have at least {MIN_NEW_PASSWORD_CHARS} characters "
            f"(it has {len(password)})"
        )


def _normalize(password: str) -> bytes:
    if not password:
        raise PasswordError("the password is empty")
    if len(password) > MAX_PASSWORD_CHARS:
        raise PasswordError(f"the password is longer than {MAX_PASSWORD_CHARS} characters")
    return unicodedata.normalize("NFKC", password).encode("utf-8")


def _derive(secret: bytes, salt: bytes, cost: ScryptCost) -> bytes:
    return hashlib.scrypt(
        secret,
        salt=salt,
        n=1 << cost.log2_n,
        r=cost.r,
        p=cost.p,
        maxmem=cost.memory_bytes + (1 << 20),
        dklen=KEY_BYTES,
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, cost: ScryptCost = DEFAULT_COST) -> str:
    """Return the storable hash of ``password`` (NFKC-normalised UTF-8, random salt).

    Raises PasswordError for an empty or over-long password.
    """
    salt = secrets.token_bytes(SALT_BYTES)
    key = _derive(_normalize(password), salt, cost)
    return f"scrypt${cost.log2_n}${cost.r}${cost.p}${_b64(salt)}${_b64(key)}"


def _parse(stored: str) -> tuple[ScryptCost, bytes, bytes] | None:
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return None
    try:
        cost = ScryptCost(int(parts[1]), int(parts[2]), int(parts[3]))
        return cost, _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        return None


def verify_password(password: str, stored: str) -> bool:
    """Return whether ``password`` matches the ``stored`` hash (constant-time compare).

    An unreadable hash, or a password that could never have been set, is ``False``.
    """
    parsed = _parse(stored)
    if parsed is None:
        return False
    cost, salt, key = parsed
    try:
        candidate = _derive(_normalize(password), salt, cost)
    except (PasswordError, ValueError, MemoryError):
        return False
    return hmac.compare_digest(candidate, key)


def needs_rehash(stored: str, cost: ScryptCost = DEFAULT_COST) -> bool:
    """Return whether ``stored`` was made with another cost than ``cost`` (or is unreadable)."""
    parsed = _parse(stored)
    return parsed is None or parsed[0] != cost
