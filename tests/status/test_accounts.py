"""Status-page accounts: password hashes, users and roles, sessions (real database)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from status_testkit import NOW, World

from monitor.accounts.passwords import (
    PasswordError,
    ScryptCost,
    hash_password,
    needs_rehash,
    verify_password,
)
from monitor.accounts.sessions import (
    ABSOLUTE_TIMEOUT,
    IDLE_TIMEOUT,
    find_session,
    prune_sessions,
    start_session,
    touch_session,
)
from monitor.accounts.users import (
    AccountError,
    Role,
    add_user,
    authenticate,
    delete_user,
    list_users,
    normalize_username,
    role_allows,
    set_password,
)
from monitor.storage.models_status import StatusSession

CHEAP = ScryptCost(log2_n=4, r=8, p=1)


def test_a_password_verifies_against_its_hash_and_nothing_else() -> None:
    stored = hash_password("correct horse ລາວ", CHEAP)
    assert stored.startswith("scrypt$4$8$1$")
    assert verify_password("correct horse ລາວ", stored)
    assert not verify_password("correct horse", stored)
    assert hash_password("correct horse ລາວ", CHEAP) != stored  # salted


def test_passwords_are_compared_after_unicode_normalisation() -> None:
    stored = hash_password("caf\u00e9", CHEAP)  # é precomposed
    assert verify_password("cafe\u0301", stored)  # e + combining acute


def test_unusable_passwords_and_unreadable_hashes_are_refused() -> None:
    with pytest.raises(PasswordError, match="empty"):
        hash_password("", CHEAP)
    with pytest.raises(PasswordError, match="longer than 1024"):
        hash_password("x" * 1025, CHEAP)
    assert not verify_password("x", "md5$abc")
    assert not verify_password("x", "scrypt$4$8$1$!!$!!")
    assert not verify_password("", hash_password("x", CHEAP))


def test_a_hash_made_with_another_cost_needs_renewing() -> None:
    stored = hash_password("pw", CHEAP)
    assert not needs_rehash(stored, CHEAP)
    assert needs_rehash(stored, ScryptCost(log2_n=5))
    assert needs_rehash("garbage", CHEAP)


def test_user_names_are_case_folded_and_checked() -> None:
    assert normalize_username("  Somchai ") == "somchai"
    assert normalize_username("ສົມໃຈ") == "ສົມໃຈ"
    for bad, message in (("", "give a user name"), ("a b", "no spaces"), ("x" * 65, "at most")):
        with pytest.raises(AccountError, match=message):
            normalize_username(bad)


def test_roles_allow_what_the_lower_roles_allow() -> None:
    assert role_allows(Role.ADMIN, Role.OPERATOR) and role_allows(Role.OPERATOR, Role.VIEWER)
    assert not role_allows(Role.VIEWER, Role.OPERATOR)


def test_users_are_added_once_listed_authenticated_and_deleted(world: World) -> None:
    factory = sessionmaker(world.engine)
    with factory.begin() as session:
        add_user(session, "Somchai", Role.OPERATOR, "s3cret", NOW, CHEAP)
        with pytest.raises(AccountError, match="already exists"):
            add_user(session, "SOMCHAI", Role.VIEWER, "other", NOW, CHEAP)
    with factory.begin() as session:
        assert [(u.username, u.role) for u in list_users(session)] == [("somchai", Role.OPERATOR)]
        assert authenticate(session, "somchai", "wrong", NOW, CHEAP) is None
        assert authenticate(session, "nobody", "s3cret", NOW, CHEAP) is None
        user = authenticate(session, "SomChai", "s3cret", NOW, CHEAP)
        assert user is not None and user.role is Role.OPERATOR
    with factory.begin() as session:
        delete_user(session, "somchai")
        with pytest.raises(AccountError, match="no user named"):
            delete_user(session, "somchai")


def test_sessions_end_when_idle_too_long_or_too_old(world: World) -> None:
    factory = sessionmaker(world.engine)
    with factory.begin() as session:
        user = add_user(session, "noi", Role.VIEWER, "pw", NOW, CHEAP)
        token, active = start_session(session, user, NOW)
    with Session(world.engine) as session:
        found = find_session(session, token, NOW + timedelta(hours=1))
        assert found is not None and found.user.username == "noi"
        assert found.csrf_token == active.csrf_token and len(found.csrf_token) >= 32
        assert find_session(session, token, NOW + IDLE_TIMEOUT) is None
        assert find_session(session, "not-a-token", NOW) is None
    # Used every 11 hours, it lives until the absolute timeout and no longer.
    at = NOW
    for _ in range(30):
        at += timedelta(hours=11)
        with factory.begin() as session:
            found = find_session(session, token, at)
            if found is None:
                break
            assert touch_session(session, found, at)
    assert NOW + ABSOLUTE_TIMEOUT <= at < NOW + ABSOLUTE_TIMEOUT + timedelta(hours=11)
    with factory.begin() as session:
        assert prune_sessions(session, at) == 1
        assert session.scalar(select(func.count()).select_from(StatusSession)) == 0


def test_the_database_keeps_only_a_digest_of_the_session_token(world: World) -> None:
    factory = sessionmaker(world.engine)
    with factory.begin() as session:
        user = add_user(session, "kham", Role.ADMIN, "pw", NOW, CHEAP)
        token, _ = start_session(session, user, NOW)
    with Session(world.engine) as session:
        stored = session.scalars(select(StatusSession.token_sha256)).all()
    assert token not in stored and len(stored[0]) == 64


def test_a_new_password_ends_the_users_sessions(world: World) -> None:
    factory = sessionmaker(world.engine)
    with factory.begin() as session:
        user = add_user(session, "bounmy", Role.OPERATOR, "old", NOW, CHEAP)
        token, _ = start_session(session, user, NOW)
    with factory.begin() as session:
        set_password(session, "bounmy", "new", NOW, CHEAP)
    with Session(world.engine) as session:
        assert find_session(session, token, NOW) is None
        assert authenticate(session, "bounmy", "new", NOW, CHEAP) is not None
