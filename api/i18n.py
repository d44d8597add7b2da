"""Languages of the user interface (English, Lao) and their gettext catalogues.

The English text is the message id, so English needs no catalogue. Lao lives in
``api/locale/lo/LC_MESSAGES/messages.po``, compiled in memory with Babel when an app first
renders a page: no binary ``.mo`` file is kept in the repository.

To add a UI string: write it in English inside ``_()`` (templates) or ``gettext()`` /
:func:`N_` (Python), add its ``msgid``/``msgstr`` to every ``.po`` file; the test suite
checks that every string it extracts has a translation.
"""

from __future__ import annotations

import gettext as gettext_module
import io
from enum import StrEnum
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "messages"
LANG_COOKIE = "linkwatch_lang"
LANG_COOKIE_MAX_AGE_S = 365 * 24 * 3600


class Language(StrEnum):
    """A language of the user interface (BCP 47 primary subtag)."""

    EN = "en"
    LO = "lo"


DEFAULT_LANGUAGE = Language.EN


def N_(message: str) -> str:
    """Mark ``message`` for extraction without translating it now; return it unchanged."""
    return message


def parse_language(value: str | None) -> Language | None:
    """Return the language named by ``value`` ("lo", "lo-LA", "EN"), or ``None`` if unknown."""
    if not value:
        return None
    primary = value.strip().replace("_", "-").split("-", 1)[0].lower()
    try:
        return Language(primary)
    except ValueError:
        return None


def parse_accept_language(header: str | None) -> Language | None:
    """Return the supported language the ``Accept-Language`` header prefers, or ``None``.

    Follows RFC 9110 section 12.5.4: ranges weighted by ``q`` (default 1), ties kept in
    header order, ``q=0`` meaning "not acceptable"; malformed parts are skipped.
    """
    if not header:
        return None
    ranked: list[tuple[float, int, Language]] = []
    for position, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        language = parse_language(tag)
        if language is not None and quality > 0:
            ranked.append((-quality, position, language))
    return min(ranked)[2] if ranked else None


def choose_language(query: str | None, cookie: str | None, accept_language: str | None) -> Language:
    """Pick the page language: ``?lang=``, then the cookie, then Accept-Language, then English.

    An unsupported value at one step is ignored and the next step decides.
    """
    return (
        parse_language(query)
        or parse_language(cookie)
        or parse_accept_language(accept_language)
        or DEFAULT_LANGUAGE
    )


def catalogue_path(language: Language, locale_dir: Path = LOCALE_DIR) -> Path:
    """Return where the ``.po`` catalogue of ``language`` lives."""
    return locale_dir / language.value / "LC_MESSAGES" / f"{DOMAIN}.po"


def load_translations(
    language: Language, locale_dir: Path = LOCALE_DIR
) -> gettext_module.NullTranslations:
    """Return the translations of ``language``, compiled in memory from its ``.po`` file.

    English returns identity translations. Fuzzy entries are left out (English is shown).
    Raises ``OSError`` if the catalogue is missing and ``babel.messages.pofile.PoFileError``
    if it does not parse: a broken catalogue should stop the app, not show mixed text.
    """
    if language is Language.EN:
        return gettext_module.NullTranslations()
    with catalogue_path(language, locale_dir).open("rb") as po_file:
        catalog = read_po(po_file, locale=language.value, abort_invalid=True)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext_module.GNUTranslations(buffer)
