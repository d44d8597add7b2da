"""load_config and check_config_command: whole files in, a Config or every problem out."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from monitor.config import Config, ConfigError
from monitor.config_loader import check_config_command, load_config

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
BAD_DIR = Path(__file__).parent / "bad"

VALID = """\
sites:
  lab:
    name: Lab
    token_env: LINKWATCH_TOKEN_LAB
    targets:
      - {id: lo, kind: icmp, host: 127.0.0.1}
"""


def _write(tmp_path: Path, text: str, name: str = "linkwatch.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _errors(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value.messages


def test_c43_misspelt_key_and_too_deep_url_are_both_reported_with_place_and_path() -> None:
    path = BAD_DIR / "c43-misspelt-key-and-deep-indent.yaml"
    messages = _errors(path)
    assert messages[0] == (
        f"{path}:10:9: sites.osaka.targets[api].vaild_status_codes: "
        "unknown key; did you mean valid_status_codes?"
    )
    assert messages[1] == (
        f"{path}:13:9: sites.osaka.targets[web].name: expected a string, got a mapping"
    )
    assert messages[2] == (
        f"{path}:14:11: sites.osaka.targets[web].url: required key missing; a 'url' key is "
        "nested under 'name' here: check its indentation"
    )
    assert len(messages) == 3


def test_c43_check_config_exits_non_zero_and_prints_every_message() -> None:
    path = BAD_DIR / "c43-misspelt-key-and-deep-indent.yaml"
    out, err = io.StringIO(), io.StringIO()
    assert check_config_command([path], out=out, err=err) != 0
    assert out.getvalue() == ""
    assert err.getvalue().splitlines() == _errors(path)


def test_lao_border_example_loads_with_seven_sites_and_their_profiles() -> None:
    config = load_config(EXAMPLES / "lao-border.yaml")
    assert list(config.sites) == ["ftb2", "ftb3", "ftb4", "lpq", "pkz", "dsv", "btn"]
    profiles = {site_id: site.link_profile for site_id, site in config.sites.items()}
    assert profiles == {
        "ftb2": "fibre",
        "ftb3": "fibre",
        "ftb4": "4g",
        "lpq": "fibre",
        "pkz": "fibre",
        "dsv": "3g",
        "btn": "vsat",
    }
    assert config.sites["btn"].name_lo == "ດ່ານສາກົນບໍ່ເຕັນ"
    for site_id, site in config.sites.items():
        assert site.token_env == f"LINKWATCH_TOKEN_{site_id.upper()}"
    assert all(config.site_zone(site_id) == "Asia/Vientiane" for site_id in config.sites)
    # a 600 ms satellite round trip is healthy under the VSAT profile
    assert config.profiles["vsat"].rtt_degraded_s > 0.6 + 0.03 * 3
    kinds = {t.kind for t in config.sites["ftb2"].targets}
    assert kinds == {"icmp", "tcp", "http", "dns"}


def test_lao_border_example_uses_only_documentation_addresses_and_example_names() -> None:
    config = load_config(EXAMPLES / "lao-border.yaml")
    documentation = ("192.0.2.", "198.51.100.", "203.0.113.")
    for site in config.sites.values():
        for target in site.targets:
            if target.kind == "http":
                assert ".example.net/" in target.url
            else:
                assert target.host.startswith(documentation), target
            if target.kind == "icmp":
                assert target.count == 20


def test_minimal_example_loads_with_one_loopback_target() -> None:
    config = load_config(EXAMPLES / "minimal.yaml")
    [site] = config.sites.values()
    [target] = site.targets
    assert target.kind == "icmp"
    assert target.host == "127.0.0.1"


def test_check_config_reports_ok_with_site_and_target_counts() -> None:
    out, err = io.StringIO(), io.StringIO()
    paths = [EXAMPLES / "lao-border.yaml", EXAMPLES / "minimal.yaml"]
    assert check_config_command(paths, out=out, err=err) == 0
    assert out.getvalue().splitlines() == [
        f"{paths[0]}: OK (7 sites, 28 targets)",
        f"{paths[1]}: OK (1 site, 1 target)",
    ]
    assert err.getvalue() == ""


def test_check_config_fails_if_any_file_is_bad_and_still_checks_the_others(
    tmp_path: Path,
) -> None:
    good = _write(tmp_path, VALID, "good.yaml")
    out, err = io.StringIO(), io.StringIO()
    status = check_config_command([tmp_path / "absent.yaml", good], out=out, err=err)
    assert status == 1
    assert err.getvalue().splitlines() == [f"{tmp_path / 'absent.yaml'}: file not found"]
    assert out.getvalue().splitlines() == [f"{good}: OK (1 site, 1 target)"]


def test_check_config_without_files_is_a_usage_error() -> None:
    err = io.StringIO()
    assert check_config_command([], out=io.StringIO(), err=err) == 2
    assert "give at least one configuration file" in err.getvalue()


def test_three_problems_in_one_file_give_three_messages_at_once() -> None:
    path = BAD_DIR / "three-problems.yaml"
    messages = _errors(path)
    assert [m.split(": ", 2)[1] for m in messages] == [
        "server.port",
        "sites.lab.link_profile",
        "sites.lab.targets[web].url",
    ]


def test_yaml_syntax_error_is_one_message_with_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path, "sites:\n  lab:\n    name: Lab\n      token_env: X\n")
    assert _errors(path) == [
        f"{path}:4:16: YAML syntax error: a ':' is not allowed here (is this line indented "
        "too deep, or does a value containing ': ' need quotes?)"
    ]


def test_duplicate_key_is_an_error_naming_both_lines(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID + "  lab:\n    name: Again\n")
    assert _errors(path) == [
        f"{path}:7:3: duplicate key 'lab'; it is already set at line 2 of this mapping"
    ]


def test_unknown_top_level_key_suggests_the_nearest_key(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID + "link_profile:\n  vsat: {rtt_degraded_s: 1}\n")
    assert _errors(path) == [f"{path}:7:1: link_profile: unknown key; did you mean link_profiles?"]


def test_lao_script_names_round_trip_intact(tmp_path: Path) -> None:
    name_lo = "ຂົວມິດຕະພາບລາວ-ໄທ ແຫ່ງທີ 2"
    text = VALID.replace("name: Lab", f"name: Friendship Bridge 2\n    name_lo: {name_lo}")
    config = load_config(_write(tmp_path, text))
    assert config.sites["lab"].name_lo == name_lo
    assert config.model_dump()["sites"]["lab"]["name_lo"] == name_lo


def test_lao_script_in_a_bad_value_is_quoted_intact_in_the_message(tmp_path: Path) -> None:
    text = VALID.replace("kind: icmp", "kind: ປິງ")
    path = _write(tmp_path, text)
    assert _errors(path) == [
        f"{path}:6:24: sites.lab.targets[lo].kind: unknown probe kind 'ປິງ'; "
        "expected one of icmp, tcp, http, dns"
    ]


def test_loaded_config_remembers_its_file_and_the_hash_of_its_bytes(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID)
    config = load_config(str(path))
    assert isinstance(config, Config)
    assert config.source == path
    assert config.source_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_missing_file_and_directory_are_clear_messages(tmp_path: Path) -> None:
    assert _errors(tmp_path / "nope.yaml") == [f"{tmp_path / 'nope.yaml'}: file not found"]
    assert _errors(tmp_path) == [f"{tmp_path}: is a directory, not a configuration file"]


def test_file_that_is_not_utf8_names_the_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(VALID.replace("name: Lab", "name: Caf\xe9").encode("latin-1"))
    assert _errors(path) == [f"{path}:3:14: not UTF-8 text (byte 0xe9); save the file as UTF-8"]


def test_control_character_is_reported_as_a_likely_half_written_file(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID.replace("name: Lab", "name: La\x00b"))
    assert _errors(path) == [
        f"{path}:3:13: control character U+0000 is not allowed (is the file binary, or still "
        "being written?)"
    ]


def test_unsupported_yaml_tag_is_reported_once_at_the_value(tmp_path: Path) -> None:
    path = _write(tmp_path, VALID.replace("host: 127.0.0.1", "host: !ip 127.0.0.1"))
    assert _errors(path) == [
        f"{path}:6:36: sites.lab.targets[lo].host: unsupported YAML tag !ip; remove the tag"
    ]


def test_merge_keys_load_and_errors_in_merged_sites_still_have_a_line(tmp_path: Path) -> None:
    text = VALID.replace("  lab:", "  lab: &base") + "  lab2:\n    <<: *base\n    name: Lab 2\n"
    config = load_config(_write(tmp_path, text))
    assert config.sites["lab2"].name == "Lab 2"
    assert config.sites["lab2"].token_env == "LINKWATCH_TOKEN_LAB"
    bad = _write(tmp_path, text + "    link_profile: satelite\n", "bad.yaml")
    assert _errors(bad) == [
        f"{bad}:10:19: sites.lab2.link_profile: unknown link profile 'satelite'; "
        "known: 3g, 4g, fibre, lan, vsat"
    ]


def test_truncated_example_never_yields_a_partial_config_or_a_traceback(tmp_path: Path) -> None:
    """A file cut anywhere (as while being rewritten) loads whole or fails with messages."""
    raw = (EXAMPLES / "lao-border.yaml").read_bytes()
    path = tmp_path / "cut.yaml"
    outcomes = {"loaded": 0, "refused": 0}
    for cut in range(0, len(raw), max(1, len(raw) // 60)):
        path.write_bytes(raw[:cut])
        try:
            config = load_config(path)
        except ConfigError as exc:
            assert exc.messages
            assert all(m.startswith(f"{path}") for m in exc.messages)
            outcomes["refused"] += 1
        else:
            # a prefix that happens to be a complete, valid file: exactly those bytes
            assert config.source_sha256 == hashlib.sha256(raw[:cut]).hexdigest()
            outcomes["loaded"] += 1
    assert outcomes["refused"] > 0
