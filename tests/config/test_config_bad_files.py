"""Every file in tests/config/bad/ fails with exactly the messages of its ``.expected`` file.

In the style of blackbox_exporter's ``config/testdata``: one bad file per problem family, and
beside it the exact messages, one per line, with the file's path written as ``FILE``.
To add a case, add ``name.yaml`` and ``name.expected``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config import ConfigError
from monitor.config_loader import load_config

BAD_DIR = Path(__file__).parent / "bad"
BAD_FILES = sorted(BAD_DIR.glob("*.yaml"))

# Words that would mean an internal name leaked into a message meant for people.
INTERNAL_WORDS = (
    "Input should",
    "pydantic",
    "Value error",
    "Target",
    "Config",
    "dict",
    "<class",
    "Traceback",
    "union_tag",
    "literal_error",
    "ruamel",
    "<block",
)


def _expected(yaml_file: Path) -> list[str]:
    lines = yaml_file.with_suffix(".expected").read_text(encoding="utf-8").splitlines()
    return [str(yaml_file) + line.removeprefix("FILE") for line in lines if line.strip()]


def _messages(yaml_file: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(yaml_file)
    return caught.value.messages


def test_the_bad_folder_holds_cases_each_with_its_expected_file() -> None:
    assert len(BAD_FILES) >= 20
    missing = [f.name for f in BAD_FILES if not f.with_suffix(".expected").is_file()]
    assert missing == []


@pytest.mark.parametrize("yaml_file", BAD_FILES, ids=lambda p: p.stem)
def test_bad_file_fails_with_exactly_its_expected_messages(yaml_file: Path) -> None:
    assert _messages(yaml_file) == _expected(yaml_file)


@pytest.mark.parametrize("yaml_file", BAD_FILES, ids=lambda p: p.stem)
def test_bad_file_messages_use_plain_words_and_name_the_file(yaml_file: Path) -> None:
    for message in _messages(yaml_file):
        assert message.startswith(f"{yaml_file}:")
        assert "\n" not in message
        leaked = [word for word in INTERNAL_WORDS if word in message]
        assert leaked == [], message
