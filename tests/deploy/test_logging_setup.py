"""Structured logs: ``monitor.logging_setup`` writes text or one JSON object per line."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from processes import free_port, terminate, wait_http, write_config

from monitor.logging_setup import (
    LOG_FORMAT_ENV,
    LogFormat,
    resolve_format,
    setup_logging,
    uvicorn_log_config,
)


@pytest.fixture
def restore_root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def test_json_lines_carry_time_level_logger_message_and_extra_fields(
    restore_root_logging: None,
) -> None:
    stream = io.StringIO()
    setup_logging(False, "json", stream=stream)
    logging.getLogger("linkwatch.test").info("site %s is back", "ຂົວ 1", extra={"site_id": "fb1"})
    logging.getLogger("linkwatch.test").debug("not shown at INFO")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["level"] == "info"
    assert record["logger"] == "linkwatch.test"
    assert record["message"] == "site ຂົວ 1 is back"
    assert record["site_id"] == "fb1"
    assert record["ts"].endswith("Z") and "T" in record["ts"]
    assert "ຂົວ" in lines[0]  # UTF-8 as is, not \\u escapes


def test_an_exception_is_one_json_line_with_its_type_and_traceback(
    restore_root_logging: None,
) -> None:
    stream = io.StringIO()
    setup_logging(False, LogFormat.JSON, stream=stream)
    try:
        raise ConnectionError("upload refused")
    except ConnectionError:
        logging.getLogger("linkwatch.agent").exception("upload failed")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["level"] == "error"
    assert record["exc_type"] == "ConnectionError"
    assert "Traceback" in record["exc"] and "upload refused" in record["exc"]


def test_text_is_the_default_and_verbose_shows_debug(restore_root_logging: None) -> None:
    stream = io.StringIO()
    setup_logging(True, stream=stream)
    logging.getLogger("linkwatch.test").debug("detail")
    assert stream.getvalue().rstrip().endswith("DEBUG linkwatch.test: detail")


def test_setting_up_again_replaces_the_handler(restore_root_logging: None) -> None:
    first, second = io.StringIO(), io.StringIO()
    setup_logging(False, "text", stream=first)
    setup_logging(False, "json", stream=second)
    logging.getLogger("x").warning("once")
    assert first.getvalue() == ""
    assert json.loads(second.getvalue())["message"] == "once"


def test_the_option_wins_over_the_environment_which_wins_over_text() -> None:
    assert resolve_format(None, {}) is LogFormat.TEXT
    assert resolve_format(None, {LOG_FORMAT_ENV: " JSON "}) is LogFormat.JSON
    assert resolve_format("text", {LOG_FORMAT_ENV: "json"}) is LogFormat.TEXT


def test_an_unknown_format_is_one_sentence_naming_where_it_came_from() -> None:
    with pytest.raises(ValueError) as from_option:
        resolve_format("yaml", {})
    assert (
        str(from_option.value) == "--log-format: unknown log format 'yaml'; use one of: text, json"
    )
    with pytest.raises(ValueError) as from_env:
        resolve_format(None, {LOG_FORMAT_ENV: "xml"})
    assert str(from_env.value).startswith(f"{LOG_FORMAT_ENV}: unknown log format 'xml'")


SERVER_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import uvicorn

    from api.app import create_app
    from monitor.config_loader import load_config
    from monitor.logging_setup import setup_logging, uvicorn_log_config

    setup_logging(False, "json")
    config = load_config(Path(sys.argv[1]))
    app = create_app(config)
    uvicorn.run(app, host="127.0.0.1", port=config.server.port, log_config=uvicorn_log_config())
    """
)


@pytest.mark.slow
def test_a_real_server_writes_only_json_lines_uvicorn_included(tmp_path: Path) -> None:
    """What ``linkwatch server --log-format json`` does once the CLI passes these through."""
    port = free_port()
    url = f"sqlite:///{tmp_path / 'linkwatch.db'}"
    cfg = write_config(
        tmp_path / "linkwatch.yaml",
        {
            "server": {"host": "127.0.0.1", "port": port, "database_url": url},
            "sites": {
                "fb1": {
                    "name": "Friendship Bridge I",
                    "token": "token-fb1-0123456789abcdef",
                    "targets": [{"id": "gw-icmp", "kind": "icmp", "host": "192.0.2.1"}],
                }
            },
        },
    )
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVER_SCRIPT, str(cfg)], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc, log)
        assert httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 503
    finally:
        terminate(proc)
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    messages = [r["message"] for r in records]
    assert any(m.startswith("Application startup complete") for m in messages), messages
    assert any(m.startswith("Application shutdown complete") for m in messages), messages
    assert {r["logger"] for r in records} >= {"uvicorn.error"}
    assert uvicorn_log_config()["loggers"]["uvicorn.access"]["level"] == "WARNING"
