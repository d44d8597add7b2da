"""``linkwatch user``: add, list, passwd, role, delete on a real SQLite database."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session
from typer.testing import CliRunner

from monitor.accounts.cli import app
from monitor.accounts.passwords import verify_password
from monitor.storage.db import make_engine
from monitor.storage.migrate import upgrade
from monitor.storage.models_status import StatusUser

runner = CliRunner()


def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'users.db'}"
    upgrade(url)
    return url


def stored_hash(url: str, name: str) -> str:
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            user = session.query(StatusUser).filter_by(username=name).one()
            return user.password_hash
    finally:
        engine.dispose()


def test_a_user_is_added_with_a_hashed_password_and_listed(tmp_path: Path) -> None:
    url = database(tmp_path)
    added = runner.invoke(
        app,
        ["add", "Somchai", "--role", "operator", "--password-stdin", "--url", url],
        input="ລະຫັດ secret\n",
    )
    assert added.exit_code == 0, added.output
    assert "added somchai (operator)" in added.output
    listed = runner.invoke(app, ["list", "--url", url])
    assert listed.exit_code == 0 and "somchai\toperator\tpassword set" in listed.output
    stored = stored_hash(url, "somchai")
    assert "secret" not in stored and verify_password("ລະຫັດ secret", stored)


def test_the_password_is_asked_twice_on_the_terminal(tmp_path: Path) -> None:
    url = database(tmp_path)
    result = runner.invoke(app, ["add", "noi", "--url", url], input="pw-1-long\npw-1-long\n")
    assert result.exit_code == 0, result.output
    assert verify_password("pw-1-long", stored_hash(url, "noi"))


def test_passwd_role_and_delete_change_the_user_and_say_so(tmp_path: Path) -> None:
    url = database(tmp_path)
    runner.invoke(app, ["add", "kham", "--password-stdin", "--url", url], input="old-password\n")
    changed = runner.invoke(
        app, ["passwd", "kham", "--password-stdin", "--url", url], input="new-password\n"
    )
    assert changed.exit_code == 0 and verify_password("new-password", stored_hash(url, "kham"))
    role = runner.invoke(app, ["role", "kham", "admin", "--url", url])
    assert role.exit_code == 0 and "role changed to admin" in role.output
    gone = runner.invoke(app, ["delete", "kham", "--url", url])
    assert gone.exit_code == 0
    assert "no users" in runner.invoke(app, ["list", "--url", url]).output


def test_mistakes_get_one_sentence_and_exit_code_2(tmp_path: Path) -> None:
    url = database(tmp_path)
    runner.invoke(app, ["add", "kham", "--password-stdin", "--url", url], input="pw-long-1\n")
    twice = runner.invoke(
        app, ["add", "KHAM", "--password-stdin", "--url", url], input="pw-long-1\n"
    )
    unknown = runner.invoke(app, ["delete", "nobody", "--url", url])
    empty = runner.invoke(app, ["add", "noi", "--password-stdin", "--url", url], input="\n")
    short = runner.invoke(app, ["add", "noi", "--password-stdin", "--url", url], input="a\n")
    short_passwd = runner.invoke(
        app, ["passwd", "kham", "--password-stdin", "--url", url], input="1234567\n"
    )
    neither = runner.invoke(app, ["list"])
    bad_role = runner.invoke(app, ["role", "kham", "boss", "--url", url])
    for result, text in (
        (twice, "username: a user named 'kham' already exists"),
        (unknown, "username: there is no user named 'nobody'"),
        (empty, "the password must have at least 8 characters (it has 0)"),
        (short, "the password must have at least 8 characters (it has 1)"),
        (short_passwd, "the password must have at least 8 characters (it has 7)"),
        (neither, "give exactly one of --config or --url"),
    ):
        assert result.exit_code == 2, result.output
        assert text in result.output
        assert "Traceback" not in result.output
    assert bad_role.exit_code == 2
    assert "noi" not in runner.invoke(app, ["list", "--url", url]).output  # nothing added
    assert verify_password("pw-long-1", stored_hash(url, "kham"))  # nor changed
