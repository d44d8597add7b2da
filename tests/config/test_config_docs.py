"""docs/configuration.md describes every key the configuration models accept."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from monitor.config import AgentConfig, Config, LinkProfile, ServerConfig, SiteConfig
from probes.specs import DnsTarget, HttpTarget, IcmpTarget, TcpTarget

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
MODELS: list[type[BaseModel]] = [
    Config,
    ServerConfig,
    AgentConfig,
    LinkProfile,
    SiteConfig,
    IcmpTarget,
    TcpTarget,
    HttpTarget,
    DnsTarget,
]


def test_configuration_reference_names_every_key_of_every_model() -> None:
    text = DOC.read_text(encoding="utf-8")
    undocumented = [
        f"{model.__name__}.{key}"
        for model in MODELS
        for key in model.model_fields
        if f"`{key}`" not in text
    ]
    assert undocumented == []


def test_configuration_reference_gives_the_model_defaults_for_server_and_agent() -> None:
    lines = DOC.read_text(encoding="utf-8").splitlines()
    for model in (ServerConfig, AgentConfig):
        for key, field in model.model_fields.items():
            if field.default is None:
                continue
            default = field.default
            shown = f"`{default:g}`" if isinstance(default, float) else f"`{default}`"
            rows = [line for line in lines if line.startswith(f"| `{key}` |")]
            assert any(shown in row for row in rows), (key, shown)
