"""Read a configuration file strictly and report every problem with file:line:column.

``load_config`` parses YAML with ruamel.yaml's round-trip loader (which keeps the line and
column of every key and list item), refuses duplicate keys, validates with the pydantic
models of :mod:`monitor.config`, and either returns a complete :class:`Config` or raises
:class:`ConfigError` listing every problem found, each as::

    FILE:LINE:COLUMN: dotted.key.path: what is wrong, in plain words

Lines and columns count from 1. List items are named by their ``id`` when they have a unique
one (``sites.lpq.targets[gw-http].url``), else by index (``valid_status_codes[2]``).
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import sys
import types
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, SequenceNode
from ruamel.yaml.reader import ReaderError

from monitor.config import (
    DEFAULT_LINK_PROFILES,
    Config,
    ConfigError,
    KeyPath,
    Problem,
    ProblemsAt,
    duplicate_target_id_problems,
    token_source_problems,
    unknown_link_profile_problems,
)

__all__ = ["ConfigError", "check_config_command", "load_config"]

_MERGE_TAG = "tag:yaml.org,2002:merge"
_TOP_KEYS = ", ".join(Config.model_fields)


def load_config(path: str | Path) -> Config:
    """Read, parse and validate the YAML configuration file at ``path``.

    Returns the complete, validated config with ``source`` set to ``path`` and
    ``source_sha256`` to the hash of the bytes read (the file is read once, so a file being
    rewritten yields either a valid config or errors, never a mix).

    Raises:
        ConfigError: the file cannot be read, is not valid YAML, has duplicate keys, or does
            not validate; ``messages`` holds every problem, one ``FILE:LINE:COLUMN: path:
            message`` line each, sorted by position.
    """
    path = Path(path)
    name = str(path)
    raw = _read(path)
    text = _decode(name, raw)
    root = _parse(name, text)
    located = _Located(name, root)
    plain, problems = _plain(root, ())
    messages = [located.message(p, m) for p, m in problems]
    try:
        config = Config.model_validate(plain)
    except ValidationError as exc:
        messages += _translate(exc, located, {p for p, _ in problems})
        messages += [located.message(p, m) for p, m in _cross_checks(plain)]
    if messages:
        raise ConfigError(_ordered(messages)) from None
    config._source = path
    config._source_sha256 = hashlib.sha256(raw).hexdigest()
    return config


def check_config_command(
    paths: list[Path], *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Check each file; print ``FILE: OK (N sites, M targets)`` or every problem.

    OK lines go to ``out`` (stdout), problems to ``err`` (stderr). Returns 0 when every file
    is valid, 1 when any is not, 2 when no file was given.
    """
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    if not paths:
        print("check-config: give at least one configuration file", file=err)
        return 2
    status = 0
    for path in paths:
        try:
            config = load_config(path)
        except ConfigError as exc:
            status = 1
            for line in exc.messages:
                print(line, file=err)
            continue
        n_sites = len(config.sites)
        n_targets = sum(len(site.targets) for site in config.sites.values())
        print(f"{path}: OK ({_count(n_sites, 'site')}, {_count(n_targets, 'target')})", file=out)
    return status


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# --- reading and parsing -------------------------------------------------------------------


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{path}: is a directory, not a configuration file"]) from None
    except PermissionError:
        raise ConfigError([f"{path}: cannot read the file: permission denied"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read the file: {exc.strerror or exc}"]) from None


def _decode(name: str, raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line, column = _line_column(raw[: exc.start].decode("utf-8", "replace"), exc.start)
        raise ConfigError(
            [
                f"{name}:{line}:{column}: not UTF-8 text (byte 0x{raw[exc.start]:02x}); save the "
                "file as UTF-8"
            ]
        ) from None


def _line_column(text: str, offset: int) -> tuple[int, int]:
    """Return the 1-based line and column of character ``offset`` in ``text``."""
    offset = min(offset, len(text))
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _parse(name: str, text: str) -> CommentedMap:
    """Parse ``text`` into a round-trip mapping; raise ConfigError on any YAML problem."""
    try:
        node = YAML(typ="rt").compose(text)
        if node is None:
            raise ConfigError([f"{name}: the file is empty; it needs at least a 'sites' mapping"])
        duplicates = sorted(_duplicate_keys(node), key=lambda d: d[0])
        if duplicates:
            raise ConfigError([f"{name}:{line}:{col}: {msg}" for (line, col), msg in duplicates])
        if not isinstance(node, MappingNode):
            line, col = node.start_mark.line + 1, node.start_mark.column + 1
            raise ConfigError(
                [
                    f"{name}:{line}:{col}: the file must be a mapping of keys ({_TOP_KEYS}), "
                    f"got {'a list' if isinstance(node, SequenceNode) else 'a single value'}"
                ]
            )
        data = YAML(typ="rt").load(text)
    except ReaderError as exc:
        line, col = _line_column(text, exc.position)
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        raise ConfigError(
            [
                f"{name}:{line}:{col}: control character U+{ord(char):04X} is not allowed "
                "(is the file binary, or still being written?)"
            ]
        ) from None
    except MarkedYAMLError as exc:
        raise ConfigError([_syntax_message(name, exc)]) from None
    except YAMLError as exc:
        raise ConfigError([f"{name}: YAML error: {exc}"]) from None
    assert isinstance(data, CommentedMap)
    return data


def _key_identity(node: Node) -> tuple[str, str] | None:
    if isinstance(node, MappingNode | SequenceNode):
        return None
    tag = getattr(node.tag, "value", node.tag)
    return (str(tag), str(node.value))


def _duplicate_keys(root: Node) -> Iterator[tuple[tuple[int, int], str]]:
    """Yield ((line, column), message) for every key that repeats one of its mapping."""
    seen_nodes: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        if isinstance(node, MappingNode):
            first_line: dict[tuple[str, str], int] = {}
            for key, value in node.value:
                stack.append(value)
                ident = _key_identity(key)
                if ident is None or ident[0] == _MERGE_TAG:
                    continue
                mark = key.start_mark
                if ident in first_line:
                    yield (
                        (mark.line + 1, mark.column + 1),
                        f"duplicate key {ident[1]!r}; it is already set at line "
                        f"{first_line[ident]} of this mapping",
                    )
                else:
                    first_line[ident] = mark.line + 1
        elif isinstance(node, SequenceNode):
            stack.extend(node.value)


_PLAIN_PROBLEMS = {
    "mapping values are not allowed here": (
        "a ':' is not allowed here (is this line indented too deep, or does a value "
        "containing ': ' need quotes?)"
    ),
    "found character '\\t' that cannot start any token": ("tab character; indent with spaces only"),
    "found unexpected end of stream": "the file ends before this value is closed",
    "could not find expected ':'": "expected a ':' after the key",
    "but found another document": (
        "a second YAML document ('---') is not allowed; keep everything in one document"
    ),
}
_TOKEN_WORDS = {
    "<block end>": "the end of the indented block",
    "'<block mapping start>'": "a key at a different indentation",
    "'<block sequence start>'": "a list at a different indentation",
    "'<block entry>'": "a '-' list item",
    "'<stream end>'": "the end of the file",
    "'<document start>'": "a '---' document start",
    "'<scalar>'": "a value",
    "'<flow mapping end>'": "a '}'",
    "'<flow sequence end>'": "a ']'",
    "the node content": "a value",
}
_CONTEXT_WORDS = {
    "while scanning a quoted scalar": "the quoted text",
    "while scanning a simple key": "the key",
    "while parsing a block mapping": "the mapping",
    "while parsing a block collection": "the list",
    "while parsing a flow sequence": "the [ ] list",
    "while parsing a flow mapping": "the { } mapping",
    "while parsing a flow node": "the [ ] or { }",
    "while scanning an alias": "the alias",
    "while scanning an anchor": "the anchor",
}


def _syntax_message(name: str, exc: MarkedYAMLError) -> str:
    """Return one ``FILE:LINE:COLUMN: YAML syntax error: ...`` line for a parser error."""
    mark = exc.problem_mark or exc.context_mark
    where = f"{name}:{mark.line + 1}:{mark.column + 1}" if mark is not None else name
    problem = (exc.problem or exc.context or "invalid YAML").strip()
    plain = _PLAIN_PROBLEMS.get(problem)
    if plain is None:
        plain = problem
        for token, words in _TOKEN_WORDS.items():
            plain = plain.replace(token, words)
    context = _CONTEXT_WORDS.get((exc.context or "").strip())
    cmark = exc.context_mark
    if context and cmark is not None and (mark is None or cmark.line != mark.line):
        plain += f" ({context} starting at line {cmark.line + 1}, column {cmark.column + 1})"
    return f"{where}: YAML syntax error: {plain}"


# --- plain data ----------------------------------------------------------------------------


def _plain(
    node: object, path: KeyPath, active: frozenset[int] = frozenset()
) -> tuple[Any, list[Problem]]:
    """Return ``node`` as plain Python data, and the problems found converting it.

    Mappings become dicts, sequences lists, and ruamel's scalar subclasses plain ``bool``,
    ``int``, ``float`` and ``str``; dates stay ``date``/``datetime``. Values pydantic cannot
    be given (custom tags, binary, sets, recursive aliases) become ``None`` with a problem.
    """
    if isinstance(node, dict | list) and id(node) in active:
        return None, [(path, "a YAML alias refers to a value that contains it")]
    if isinstance(node, dict):
        out: dict[Any, Any] = {}
        problems: list[Problem] = []
        inner = active | {id(node)}
        for key, value in node.items():
            plain_key = _scalar(key) if _is_plain_key(key) else str(key)
            part = plain_key if isinstance(plain_key, str | int) else str(plain_key)
            out[plain_key], found = _plain(value, (*path, part), inner)
            problems += found
        return out, problems
    if isinstance(node, list):
        items: list[Any] = []
        problems = []
        inner = active | {id(node)}
        for index, value in enumerate(node):
            item, found = _plain(value, (*path, index), inner)
            items.append(item)
            problems += found
        return items, problems
    if node is None or isinstance(node, bool | int | float | str | dt.date):
        return _scalar(node), []
    if isinstance(node, TaggedScalar):
        return None, [(path, f"unsupported YAML tag {node.tag!s}; remove the tag")]
    return None, [(path, "unsupported YAML value (binary, set or tagged value)")]


def _is_plain_key(key: Any) -> bool:
    return key is None or isinstance(key, bool | int | float | str | dt.date)


def _scalar(value: Any) -> Any:
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int) and type(value).__name__ == "ScalarBoolean":
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value


# --- positions and paths -------------------------------------------------------------------


Mark = tuple[int, int]
"""A 0-based (line, column) in the file, as ruamel.yaml keeps them."""

Message = tuple[Mark, str]
"""One formatted problem and where it is, so problems can be sorted by position."""


def _ordered(messages: list[Message]) -> list[str]:
    """Return the texts of ``messages`` without repeats, sorted by line then column."""
    return list(dict.fromkeys(text for _, text in sorted(messages, key=lambda m: m[0])))


@dataclass(frozen=True)
class _Spot:
    """Where a key path leads in the file.

    ``node`` is the raw value there (None if the path does not exist); ``anchor`` is the
    mark of the key (mapping value), of the item (list item) or of the file's start (root)
    for the deepest part of the path that exists; ``value`` the mark of a scalar value.
    """

    found: bool
    node: Any
    anchor: Mark
    value: Mark | None


class _Located:
    """The parsed file with its marks: turns a key path into ``FILE:LINE:COLUMN: path``."""

    def __init__(self, name: str, root: CommentedMap) -> None:
        self.name = name
        self.root = root

    def spot(self, path: KeyPath) -> _Spot:
        """Follow ``path`` through the file, as far as it exists."""
        node: Any = self.root
        anchor: Mark = (self.root.lc.line or 0, self.root.lc.col or 0)
        value: Mark | None = None
        for part in path:
            if isinstance(node, CommentedMap) and (key := _find_key(node, part)) is not _MISSING:
                anchor = _mark(node.lc.key, key) or anchor
                value = _mark(node.lc.value, key)
                node = node[key]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
                anchor = _mark(node.lc.item, part) or anchor
                value = anchor
                node = node[part]
            else:
                return _Spot(False, None, anchor, None)
        return _Spot(True, node, anchor, value)

    def text(self, path: KeyPath) -> str:
        """Return ``path`` as ``a.b[id].c``, naming list items by a unique ``id``."""
        out = ""
        node: Any = self.root
        for part in path:
            if isinstance(node, list) and isinstance(part, int):
                out += f"[{_item_name(node, part)}]"
                node = node[part] if 0 <= part < len(node) else None
            else:
                out += f".{part}" if out else str(part)
                key = _find_key(node, part) if isinstance(node, dict) else _MISSING
                node = None if key is _MISSING else node[key]
        return out

    def message(self, path: KeyPath, message: str, *, at_key: bool = False) -> Message:
        """Place a problem at ``path``: at a scalar's value, else (or if ``at_key``) its key."""
        spot = self.spot(path)
        scalar = spot.found and spot.node is not None and not isinstance(spot.node, dict | list)
        mark = spot.value if scalar and not at_key and spot.value else spot.anchor
        return self.at(mark, path, message)

    def at(self, mark: Mark, path: KeyPath, message: str) -> Message:
        text = self.text(path)
        where = f"{self.name}:{mark[0] + 1}:{mark[1] + 1}"
        return mark, f"{where}: {text}: {message}" if text else f"{where}: {message}"


_MISSING = object()


def _find_key(node: dict[Any, Any], part: str | int) -> Any:
    if part in node:
        return part
    for key in node:
        if str(key) == str(part):
            return key
    return _MISSING


def _mark(get: typing.Callable[[Any], Any], key: Any) -> tuple[int, int] | None:
    """Return ruamel's 0-based (line, column) from ``get(key)``; None if it has none.

    Keys brought in by a ``<<`` merge have no marks of their own.
    """
    try:
        mark = get(key)
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
    if isinstance(mark, tuple | list) and len(mark) >= 2:
        return (int(mark[0]), int(mark[1]))
    return None


def _item_name(seq: object, index: int) -> str:
    if not isinstance(seq, list) or not 0 <= index < len(seq):
        return str(index)
    ids = [item.get("id") if isinstance(item, dict) else None for item in seq]
    own = ids[index]
    if isinstance(own, str) and own and ids.count(own) == 1 and "]" not in own:
        return own
    return str(index)


# --- pydantic errors to sentences ----------------------------------------------------------


@dataclass(frozen=True)
class _Resolved:
    """A pydantic error location mapped onto the file and the models."""

    data_path: KeyPath
    parent: Any  # the unwrapped type holding the last part (a model, dict, list), or None
    annotation: Any  # the last part's declared type, or None when unknown
    at_dict_key: bool  # the error is about a mapping key itself ("[key]")
    union_tags: tuple[str, ...]  # for a discriminated union: its tags, in declared order
    discriminator: str | None


def _translate(exc: ValidationError, located: _Located, already: set[KeyPath]) -> list[Message]:
    """Turn every pydantic error of ``exc`` into ``FILE:LINE:COLUMN: path: message`` lines.

    Errors at a path in ``already`` (a value the loader could not convert, and reported)
    are left out: they would only repeat that problem.
    """
    messages: list[Message] = []
    for error in exc.errors():
        resolved = _resolve(error["loc"])
        if resolved.data_path in already:
            continue
        messages += _error_lines(error, resolved, located)
    return messages


def _error_lines(error: ErrorDetails, r: _Resolved, located: _Located) -> list[Message]:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    path = r.data_path
    if kind == "value_error" and isinstance(ctx.get("error"), ProblemsAt):
        problems: ProblemsAt = ctx["error"]
        return [located.message((*path, *rel), msg) for rel, msg in problems.problems]
    if kind == "missing":
        return [_missing_line(path, located)]
    if kind == "union_tag_not_found":
        tags = ", ".join(r.union_tags)
        disc = r.discriminator or "kind"
        return [
            located.message(
                (*path, disc), f"required key missing; expected one of {tags}", at_key=True
            )
        ]
    if kind == "union_tag_invalid":
        tags = ", ".join(r.union_tags)
        disc = r.discriminator or "kind"
        msg = f"unknown probe kind {_shown(error['input'], disc)}; expected one of {tags}"
        return [located.message((*path, disc), msg)]
    if kind == "extra_forbidden":
        return [located.message(path, _unknown_key(path, r.parent), at_key=True)]
    if r.at_dict_key:
        return [located.message(path, _key_problem(error), at_key=True)]
    return [located.message(path, _sentence(error, r))]


def _shown(item: Any, disc: str) -> str:
    value = item.get(disc) if isinstance(item, dict) else item
    return repr(value) if isinstance(value, str) else _got(value)


def _missing_line(path: KeyPath, located: _Located) -> Message:
    """Say a key is missing; if a sibling mapping holds that key, point at it instead.

    A key indented one level too deep lands inside the mapping of the key above it
    (C43): the message then names where it went, on its own line.
    """
    key, parent = path[-1], path[:-1]
    spot = located.spot(parent)
    if isinstance(spot.node, dict) and isinstance(key, str):
        for sibling, value in spot.node.items():
            if isinstance(value, dict) and key in value:
                nested = located.spot((*parent, sibling, key))
                return located.at(
                    nested.anchor,
                    path,
                    f"required key missing; a {key!r} key is nested under {sibling!r} here: "
                    "check its indentation",
                )
    return located.at(spot.anchor, path, "required key missing")


def _unknown_key(path: KeyPath, parent: Any) -> str:
    allowed = list(parent.model_fields) if _is_model(parent) else []
    key = str(path[-1]) if path else ""
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if close:
        return f"unknown key; did you mean {close[0]}?"
    if allowed:
        return f"unknown key; expected one of {', '.join(allowed)}"
    return "unknown key"


def _key_problem(error: ErrorDetails) -> str:
    ctx = error.get("ctx") or {}
    if error["type"] == "value_error" and "error" in ctx:
        return str(ctx["error"])
    if error["type"] == "string_type":
        return f"the key {_got(error['input'])} must be text (put it in quotes)"
    return _clean(error["msg"])


_EXPECTED = {
    "string_type": "a string",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def _sentence(error: ErrorDetails, r: _Resolved) -> str:
    """Return the plain-words message for one pydantic error (no internal type names)."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error["input"]
    if kind in _EXPECTED:
        msg = f"expected {_EXPECTED[kind]}, got {_got(value)}"
        if kind == "string_type" and _is_scalar(value):
            msg += " (put it in quotes)"
        elif kind == "list_type" and _is_scalar(value):
            msg += f" (write [{_got(value)}] for a list of one)"
        elif value is None and _EXPECTED[kind] == "a mapping":
            msg += " (give it keys, or remove it)"
        return msg
    if kind in ("value_error", "assertion_error") and "error" in ctx:
        return str(ctx["error"])
    bounds = {
        "greater_than": ("must be greater than", "gt"),
        "greater_than_equal": ("must be at least", "ge"),
        "less_than": ("must be less than", "lt"),
        "less_than_equal": ("must be at most", "le"),
    }
    if kind in bounds:
        words, key = bounds[kind]
        return f"{words} {_got(ctx.get(key))}"
    if kind == "literal_error":
        return _literal_sentence(value, r.annotation, str(ctx.get("expected", "")))
    if kind in ("string_too_short", "too_short"):
        n = int(ctx.get("min_length", 1))
        if n <= 1:
            return "must not be empty"
        if kind == "string_too_short":
            return f"must be at least {n} characters long"
        return f"needs at least {n} entries"
    if kind == "string_too_long":
        return f"must be at most {ctx.get('max_length')} characters long"
    if kind == "too_long":
        return f"may have at most {ctx.get('max_length')} entries"
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        if pattern == "^https?://":
            return f"must start with http:// or https://, got {_got(value)}"
        return f"must match the pattern {pattern}, got {_got(value)}"
    if kind == "finite_number":
        return "must be a finite number"
    return _clean(error["msg"])


def _literal_sentence(value: Any, annotation: Any, expected: str) -> str:
    choices = [str(c) for c in typing.get_args(_unwrap(annotation)[0])] if annotation else []
    if not choices:
        return f"must be one of {expected}, got {_got(value)}"
    msg = f"must be one of {', '.join(choices)}, got {_got(value)}"
    if isinstance(value, str):
        folded = {c.lower(): c for c in choices}
        close = folded.get(value.lower()) or next(
            iter(difflib.get_close_matches(value, choices, n=1, cutoff=0.6)), None
        )
        if close:
            msg += f"; did you mean {close}?"
    return msg


def _clean(msg: str) -> str:
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return msg[:1].lower() + msg[1:]


def _is_scalar(value: Any) -> bool:
    return value is not None and not isinstance(value, dict | list)


def _got(value: Any) -> str:
    """Describe a YAML value for "got ..." in a message: its kind, or a scalar itself."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dt.datetime | dt.date):
        return f"the date {value.isoformat()}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return repr(shown)
    return "a value of another kind"


# --- walking the models along a pydantic location -------------------------------------------


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _unwrap(tp: Any) -> tuple[Any, str | None]:
    """Strip ``Annotated`` and ``X | None``; return the type and a union's discriminator."""
    discriminator: str | None = None
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            args = typing.get_args(tp)
            for meta in args[1:]:
                if isinstance(meta, FieldInfo) and isinstance(meta.discriminator, str):
                    discriminator = meta.discriminator
            tp = args[0]
            continue
        if origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(members) == 1:
                tp = members[0]
                continue
        return tp, discriminator


def _union_models(tp: Any, discriminator: str | None) -> dict[str, type[BaseModel]]:
    """Map each tag of a discriminated union of models to its model; {} if not one."""
    if typing.get_origin(tp) not in (typing.Union, types.UnionType):
        return {}
    disc = discriminator or "kind"
    tags: dict[str, type[BaseModel]] = {}
    for member in typing.get_args(tp):
        if not _is_model(member) or disc not in member.model_fields:
            return {}
        for tag in typing.get_args(member.model_fields[disc].annotation):
            tags[str(tag)] = member
    return tags


def _resolve(loc: Sequence[str | int]) -> _Resolved:
    """Map a pydantic ``loc`` onto a data path, following the models' declared types.

    Discriminated-union tags (``("targets", 0, "http", "url")``) are dropped from the data
    path; ``"[key]"`` marks an error about a mapping key itself.
    """
    tp: Any = Config
    parent: Any = None
    annotation: Any = None
    data_path: list[str | int] = []
    at_key = False
    tags: tuple[str, ...] = ()
    discriminator: str | None = None
    for part in loc:
        current, disc = _unwrap(tp)
        union = _union_models(current, disc)
        if union:
            tags, discriminator = tuple(union), disc or "kind"
            if isinstance(part, str) and part in union:
                tp = union[part]
                continue
        parent = current
        origin = typing.get_origin(current)
        if part == "[key]":
            at_key = True
            tp = typing.get_args(current)[0] if origin is dict else None
        elif _is_model(current):
            data_path.append(part)
            field = current.model_fields.get(str(part))
            tp = field.annotation if field is not None else None
            if field is not None and field.discriminator is not None:
                tp = typing.Annotated[tp, field]
        elif origin is dict:
            data_path.append(part)
            tp = typing.get_args(current)[1]
        elif origin is list:
            data_path.append(part)
            tp = typing.get_args(current)[0]
        else:
            data_path.append(part)
            tp = None
        annotation = tp
    if tp is not None:
        current, disc = _unwrap(tp)
        union = _union_models(current, disc)
        if union:
            tags, discriminator = tuple(union), disc or "kind"
    return _Resolved(tuple(data_path), parent, annotation, at_key, tags, discriminator)


# --- cross-checks on the raw file ------------------------------------------------------------


def _cross_checks(data: Any) -> list[Problem]:
    """Run the config's cross-checks on the raw data (absolute paths).

    pydantic runs a model's own checks only once all its fields are valid; when something
    else is wrong these would stay silent until the next try. The same functions the models
    use run here, and repeats of pydantic's messages are dropped by the caller.
    """
    if not isinstance(data, dict):
        return []
    sites = data.get("sites")
    if not isinstance(sites, dict):
        return []
    problems: list[Problem] = []
    profiles: dict[str, object] = {}
    for site_id, site in sites.items():
        if not isinstance(site, dict):
            continue
        base: KeyPath = ("sites", str(site_id))
        token = site.get("token") is not None
        token_env = site.get("token_env") is not None
        problems += [((*base, *p), m) for p, m in token_source_problems(token, token_env)]
        targets = site.get("targets")
        if isinstance(targets, list):
            ids = [t.get("id") if isinstance(t, dict) else None for t in targets]
            problems += [((*base, "targets", *p), m) for p, m in duplicate_target_id_problems(ids)]
        if "link_profile" in site:
            profiles[str(site_id)] = site["link_profile"]
    defined = set(DEFAULT_LINK_PROFILES)
    own = data.get("link_profiles")
    if isinstance(own, dict):
        defined |= {str(k) for k in own}
    problems += unknown_link_profile_problems(profiles, defined)
    return problems
