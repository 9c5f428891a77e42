"""The locks agree with pyproject.toml, pin everything with hashes, and are what the README and CI install.

A dependency added to pyproject.toml without ``bash requirements/lock.sh`` fails here, so a new release
of anything changes nothing until someone re-locks on purpose.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
LOCKS = REPO / "requirements"
#: What each lock holds: extras of memebot (besides its base dependencies), and packages left out.
COVERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "bot.lock": ((), ()),
    "cpu.lock": (("models",), ()),
    "gpu.lock": (("models",), ("torch",)),
    "test.lock": (("*",), ()),
}
#: The platform every lock is made for (requirements/lock.sh).
TARGET = {"sys_platform": "linux", "python_version": "3.11", "platform_machine": "x86_64"}
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def project() -> dict[str, object]:
    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]  # type: ignore[no-any-return]


def wanted(extras: tuple[str, ...]) -> list[Requirement]:
    """memebot's own requirements for ``extras`` ('*': all), self-references expanded, for the target."""
    meta = project()
    optional: dict[str, list[str]] = meta["optional-dependencies"]  # type: ignore[assignment]
    names = list(optional) if "*" in extras else list(extras)
    found: list[Requirement] = []
    queue = [*meta["dependencies"], *(line for name in names for line in optional[name])]  # type: ignore[misc]
    while queue:
        requirement = Requirement(queue.pop())
        if requirement.marker is not None and not requirement.marker.evaluate(TARGET):
            continue
        if canonicalize_name(requirement.name) == "memebot":
            queue.extend(line for extra in requirement.extras for line in optional[extra])
            continue
        found.append(requirement)
    return found


def pins(lock: Path) -> dict[str, str]:
    """Package name → pinned version, and checks every pin carries at least one hash."""
    text = lock.read_text(encoding="utf-8")
    entries = re.split(r"\n(?=[A-Za-z0-9])", text)
    pinned: dict[str, str] = {}
    for entry in entries:
        match = _PIN.match(entry)
        if match is None:
            continue
        assert "--hash=sha256:" in entry, f"{lock.name}: {match.group(1)} has no hash"
        pinned[canonicalize_name(match.group(1))] = match.group(2)
    return pinned


@pytest.mark.parametrize("name", sorted(COVERS))
def test_every_requirement_is_pinned_within_its_bounds(name: str) -> None:
    extras, left_out = COVERS[name]
    pinned = pins(LOCKS / name)
    for requirement in wanted(extras):
        key = canonicalize_name(requirement.name)
        if key in left_out:
            assert key not in pinned, f"{name} must leave {key} to the host"
            continue
        assert key in pinned, f"{requirement} is in pyproject.toml, not in {name}: bash requirements/lock.sh"
        version = Version(pinned[key])
        assert requirement.specifier.contains(version, prereleases=True), (
            f"{name} pins {key}=={version}, outside pyproject.toml's {requirement.specifier}: re-lock"
        )


def test_the_cpu_locks_take_torchs_cpu_build() -> None:
    for name in ("cpu.lock", "test.lock"):
        assert pins(LOCKS / name)["torch"].endswith("+cpu")
        assert not any(key.startswith("nvidia-") for key in pins(LOCKS / name))


def test_a_dependency_added_without_relocking_is_caught(tmp_path: Path) -> None:
    lock = tmp_path / "cpu.lock"
    lock.write_text((LOCKS / "cpu.lock").read_text(encoding="utf-8"), encoding="utf-8")
    pinned = pins(lock)
    missing = Requirement("left-pad>=1.0")
    assert canonicalize_name(missing.name) not in pinned
    stale = Requirement("numpy>=99")
    assert not stale.specifier.contains(Version(pinned["numpy"]))


def test_the_readme_and_ci_install_from_the_locks() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    test_command = next(line for line in ci.splitlines() if "pytest" in line)
    assert "--require-hashes -r requirements/test.lock" in test_command
    assert test_command in readme, "the README's test command is the one CI runs"
    assert "--require-hashes -r requirements/cpu.lock" in readme
