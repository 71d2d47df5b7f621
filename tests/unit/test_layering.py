"""Imports point down only (shared/DESIGN.md §2); below io, no trio, sockets or clocks."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Which netaccess packages each package may import (its own package is always allowed).
ALLOWED: dict[str, set[str]] = {
    "netaccess.proto": set(),
    "netaccess.policy": {"netaccess.proto"},
    "netaccess.config": {"netaccess.proto", "netaccess.policy"},
    "netaccess.control": {"netaccess.proto", "netaccess.policy"},
    "netaccess.store": {"netaccess.proto", "netaccess.policy"},
    "netaccess.enforce": {"netaccess.proto", "netaccess.policy"},
    "netaccess.agent": {"netaccess.proto"},
    "netaccess.io": {
        "netaccess.proto",
        "netaccess.policy",
        "netaccess.config",
        "netaccess.control",
        "netaccess.store",
        "netaccess.enforce",
    },
    "appliance": {"netaccess.proto", "netaccess.policy", "netaccess.config", "netaccess.control"},
}
BELOW_IO = {
    "netaccess.proto",
    "netaccess.policy",
    "netaccess.config",
    "netaccess.control",
    "netaccess.store",
    "netaccess.enforce",
}
FORBIDDEN_BELOW_IO = {
    "trio",
    "socket",
    "time",
    "click",
    "asyncio",
    "selectors",
    "select",
    "threading",
    "subprocess",
}
# enforce loads a whole ruleset with `nft -f` (one process per load, never per change), and
# packs addresses with socket.inet_pton (a bulk flush packs 10k); its sockets are netlink ones.
ALSO_ALLOWED_BELOW_IO: dict[str, set[str]] = {"netaccess.enforce": {"subprocess", "socket"}}


def package_of(module: str) -> str | None:
    if module == "netaccess" or module.startswith("netaccess.__"):
        return "netaccess"
    for pkg in ALLOWED:
        if module == pkg or module.startswith(pkg + "."):
            return pkg
    return None


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    me = module_name(path, root).split(".")
    is_pkg = path.name == "__init__.py"
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = me if is_pkg else me[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # `from netaccess import io` imports the io package.
            found += [
                (node.lineno, f"{target}.{alias.name}")
                for alias in node.names
                if target == "netaccess"
            ]
    return found


SOURCES = sorted(
    [*ROOT.joinpath("netaccess").rglob("*.py"), *ROOT.joinpath("appliance").rglob("*.py")]
)


def violations(path: Path, root: Path = ROOT) -> list[str]:
    me = package_of(module_name(path, root))
    if me is None or me == "netaccess":
        return []
    problems = []
    for line, target in imports_of(path, root):
        top = target.split(".")[0]
        where = f"{path.relative_to(root)}:{line}"
        forbidden = FORBIDDEN_BELOW_IO - ALSO_ALLOWED_BELOW_IO.get(me, set())
        if me in BELOW_IO and top in forbidden:
            problems.append(f"{where}: {me} is below io and must not import {top}")
        other = package_of(target)
        if other in (None, "netaccess", me):
            continue
        if other not in ALLOWED[me]:
            problems.append(f"{where}: {me} must not import {other}")
    return problems


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_module_imports_only_lower_layers(path: Path) -> None:
    assert violations(path) == []


def test_guard_catches_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "netaccess" / "proto" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("import time\nfrom netaccess.io import daemon\nfrom ..policy import endpoint\n")
    found = violations(bad, tmp_path)
    assert any("must not import time" in v for v in found)
    assert any("must not import netaccess.io" in v for v in found)
    assert any("must not import netaccess.policy" in v for v in found)


def test_every_layer_package_exists() -> None:
    for pkg in ALLOWED:
        assert ROOT.joinpath(*pkg.split("."), "__init__.py").is_file(), pkg


# The agent ships as a zipapp holding netaccess/agent and netaccess/proto only: besides
# them it may use the standard library and cryptography. tnc_client, the trio driver kept
# for tools/tnc-probe and the benchmarks, stays out of the zipapp.
AGENT_OUTSIDE_ZIPAPP = {"tnc_client.py"}


def agent_third_party(path: Path) -> list[str]:
    found = []
    for line, target in imports_of(path, ROOT):
        top = target.split(".")[0]
        if top == "netaccess":
            allowed = target.startswith(("netaccess.proto", "netaccess.agent"))
        else:
            allowed = top in ("cryptography", "__future__") or top in sys.stdlib_module_names
        if not allowed:
            found.append(f"{path.name}:{line}: {target}")
    return found


@pytest.mark.parametrize(
    "path",
    sorted(p for p in ROOT.joinpath("netaccess", "agent").glob("*.py")
           if p.name not in AGENT_OUTSIDE_ZIPAPP),
    ids=lambda p: p.name,
)  # fmt: skip
def test_the_agent_uses_only_proto_the_stdlib_and_cryptography(path: Path) -> None:
    assert agent_third_party(path) == []


def test_the_agent_guard_catches_trio(tmp_path: Path) -> None:
    bad = ROOT / "netaccess" / "agent" / "tnc_client.py"
    assert any("trio" in problem for problem in agent_third_party(bad))
