"""UI languages: choosing one, and the Lao catalogue covering every UI string."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

from api.i18n import (
    Language,
    catalogue_path,
    choose_language,
    load_translations,
    parse_accept_language,
)

API_DIR = Path(__file__).resolve().parents[2] / "api"


def extracted_msgids() -> set[str]:
    keywords = {**DEFAULT_KEYWORDS, "N_": None}
    found = extract_from_dir(
        str(API_DIR),
        method_map=[("templates/**.html", "jinja2"), ("**.py", "python")],
        options_map={"templates/**.html": {"extensions": "jinja2.ext.i18n"}},
        keywords=keywords,
    )
    return {message for _, _, message, _, _ in found if isinstance(message, str)}


def lao_catalog() -> Catalog:
    with catalogue_path(Language.LO).open("rb") as po_file:
        return read_po(po_file, locale="lo")


def test_every_ui_string_has_a_lao_translation() -> None:
    catalog = lao_catalog()
    translated = {m.id for m in catalog if m.id and m.string and not m.fuzzy}
    missing = extracted_msgids() - translated
    assert not missing, f"no Lao translation for: {sorted(missing)}"


def test_lao_catalogue_holds_no_unused_strings() -> None:
    unused = {m.id for m in lao_catalog() if m.id} - extracted_msgids()
    assert not unused, f"translated but no longer used: {sorted(unused)}"


def test_lao_translations_keep_their_placeholders() -> None:
    problems = [(m.id, [str(e) for e in errors]) for m, errors in lao_catalog().check()]
    assert problems == []
    for message in lao_catalog():
        if message.id:
            placeholders = re.compile(r"%(?:\(\w+\))?[ds%]")
            assert sorted(placeholders.findall(str(message.id))) == sorted(
                placeholders.findall(str(message.string))
            ), message.id


def test_lao_translations_are_in_lao_script_and_marked_for_review() -> None:
    for message in lao_catalog():
        if message.id:
            assert re.search("[\u0e80-\u0eff]", str(message.string)), message.id
            assert "needs review by a Lao speaker" in message.user_comments, message.id


def test_lao_catalogue_compiles_in_memory() -> None:
    translations = load_translations(Language.LO)
    assert translations.gettext("DOWN") == "ຂາດການເຊື່ອມຕໍ່"
    assert translations.gettext("SITE UNREACHABLE") == "ຕິດຕໍ່ສະຖານທີ່ບໍ່ໄດ້"


def test_english_needs_no_catalogue() -> None:
    assert load_translations(Language.EN).gettext("DOWN") == "DOWN"


@pytest.mark.parametrize(
    ("query", "cookie", "accept", "expected"),
    [
        ("lo", None, None, Language.LO),
        ("en", "lo", "lo", Language.EN),
        (None, "lo", "en", Language.LO),
        ("fr", "lo", None, Language.LO),
        (None, "xx", "lo-LA,en;q=0.5", Language.LO),
        (None, None, "en;q=0.4, lo;q=0.8", Language.LO),
        (None, None, "fr, de", Language.EN),
        (None, None, None, Language.EN),
    ],
)
def test_language_comes_from_query_then_cookie_then_accept_language(
    query: str | None, cookie: str | None, accept: str | None, expected: Language
) -> None:
    assert choose_language(query, cookie, accept) is expected


def test_accept_language_with_zero_quality_is_refused() -> None:
    assert parse_accept_language("lo;q=0, fr") is None
    assert parse_accept_language("lo;q=bad") is None
