"""Case C40: a fixed naming table (docs/metrics.md) that the code and a real scrape must match.

A library upgrade or a code change that renames a series, changes a type or a label set, or
writes ``_total_total`` fails here, in both exposition formats.
"""

from __future__ import annotations

import re

import pytest
from metrics_world import (
    OPENMETRICS,
    Row,
    doc_family_name,
    exposed_families,
    fill,
    full_config,
    naming_table,
    scrape,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from status_testkit import World

from api.metrics import catalogue

DOC_TYPE_IN_TEXT_FORMAT = {"gauge": "gauge", "counter": "counter", "info": "gauge"}


@pytest.fixture
def table() -> dict[str, Row]:
    rows = naming_table()
    assert len(rows) >= 20, "the naming table of docs/metrics.md was not found"
    return rows


def test_the_table_lists_exactly_the_code_catalogue(table: dict[str, Row]) -> None:
    in_code = {}
    for spec in catalogue.ALL:
        suffix = {"counter": "_total", "info": "_info"}.get(spec.type.value, "")
        in_code[spec.name + suffix] = (spec.type.value, spec.unit or "", frozenset(spec.labels))
    if "linkwatch_build_info" in in_code:  # info labels are values, listed in the table
        kind, unit, _ = in_code["linkwatch_build_info"]
        in_code["linkwatch_build_info"] = (kind, unit, frozenset({"version", "python_version"}))
    documented = {row.name: (row.type, row.unit, row.labels) for row in table.values()}
    assert documented == in_code


def test_every_documented_family_is_scraped_with_its_type_and_labels_in_openmetrics(
    world: World, table: dict[str, Row]
) -> None:
    config = full_config()
    fill(world, config)
    exposed = exposed_families(scrape(world, config, OPENMETRICS), openmetrics=True)
    expected = {doc_family_name(row): (row.type, row.labels) for row in table.values()}
    assert exposed == expected


def test_every_documented_family_is_scraped_with_its_type_and_labels_in_text_format(
    world: World, table: dict[str, Row]
) -> None:
    config = full_config()
    fill(world, config)
    exposed = exposed_families(scrape(world, config), openmetrics=False)
    expected: dict[str, tuple[str, frozenset[str]]] = {}
    for row in table.values():
        if row.type == "gaugehistogram":  # text 0.0.4 has none: buckets + two gauges
            expected[row.name] = ("histogram", row.labels)
            expected[f"{row.name}_gcount"] = ("gauge", row.labels)
            expected[f"{row.name}_gsum"] = ("gauge", row.labels)
        else:
            name = row.name.removesuffix("_total") if row.type == "counter" else row.name
            expected[name] = (DOC_TYPE_IN_TEXT_FORMAT[row.type], row.labels)
    assert exposed == expected


@pytest.mark.parametrize("accept", [None, OPENMETRICS], ids=["text", "openmetrics"])
def test_help_and_type_lines_name_their_samples(world: World, accept: str | None) -> None:
    config = full_config()
    fill(world, config)
    text = scrape(world, config, accept)
    openmetrics = accept is not None
    family = kind = None
    helped: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helped.add(line.split()[2])
        elif line.startswith("# TYPE "):
            _, _, family, kind = line.split()
            assert family in helped, f"TYPE {family} without HELP"
        elif line.startswith("#") or not line:
            continue
        else:
            name = re.split(r"[{ ]", line, maxsplit=1)[0]
            assert family is not None and kind is not None
            assert name in _allowed_sample_names(family, kind, openmetrics), line
            assert "_total_total" not in name and "_seconds_seconds" not in name
    assert text.endswith("# EOF\n") == openmetrics


def _allowed_sample_names(family: str, kind: str, openmetrics: bool) -> set[str]:
    if openmetrics:
        return {
            "counter": {f"{family}_total"},
            "info": {f"{family}_info"},
            "gaugehistogram": {f"{family}_bucket", f"{family}_gcount", f"{family}_gsum"},
        }.get(kind, {family})
    if kind == "histogram":
        return {f"{family}_bucket"}
    return {family}  # text format: counters are declared by their _total name


def test_units_are_written_in_the_names(table: dict[str, Row]) -> None:
    for row in table.values():
        base = row.name.removesuffix("_total")
        if row.unit:
            assert base.endswith(f"_{row.unit}"), row
        assert not re.search(r"_(ms|milliseconds|percent)\b", row.name), row
        if row.type == "counter":
            assert row.name.endswith("_total") and not row.name.endswith("_total_total"), row


def test_prometheus_client_reads_the_same_samples_that_our_writer_wrote(world: World) -> None:
    """Our exposition writer against prometheus_client's, through the app's own registry."""
    config = full_config()
    fill(world, config)
    with world.client(config) as client:
        ours = client.get("/metrics").text
        registry = client.app.state.metrics_registry  # type: ignore[attr-defined]
        theirs = generate_latest(registry).decode()

    def samples(text: str) -> set[tuple[str, frozenset[tuple[str, str]], float]]:
        return {
            (s.name, frozenset(s.labels.items()), s.value)
            for f in text_string_to_metric_families(text)
            for s in f.samples
        }

    assert samples(ours) == samples(theirs)
    assert len(samples(ours)) > 100
