"""The RADIUS dictionaries on disk: the ones shipped in netaccess/proto/radius/dictionaries
(the RFC attributes, Cisco and Microsoft), and a site's own FreeRADIUS-format files."""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

from netaccess.proto.radius.dictionary import Dictionary, parse_dictionary
from netaccess.proto.radius.errors import DictionaryError

_SHIPPED = "dictionaries/"


@functools.cache
def standard_dictionary() -> Dictionary:
    """The shipped dictionary (its top file $INCLUDEs the rest); parsed once."""
    return _parse(None)


def server_dictionary(site: Path | None) -> Dictionary:
    """The shipped dictionary, plus a site's own file (radius.dictionary) when given: its
    vendors and attributes join the shipped ones, and a clash is a DictionaryError."""
    return standard_dictionary() if site is None else _parse(site)


def _parse(site: Path | None) -> Dictionary:
    folder = resources.files("netaccess.proto.radius").joinpath("dictionaries")

    def include(name: str, includer: str) -> tuple[str, str]:
        if not includer.startswith(_SHIPPED) or Path(name).is_absolute():
            target = Path(name) if Path(name).is_absolute() else Path(includer).parent / name
            return _read(target, includer)
        if "/" in name or name.startswith("."):
            raise DictionaryError(includer, 0, f"$INCLUDE {name}: only files beside it")
        return _SHIPPED + name, folder.joinpath(name).read_text("utf-8")

    top = folder.joinpath("dictionary").read_text("utf-8")
    if site is not None:
        top += f"\n$INCLUDE {site}\n"
    return parse_dictionary(top, _SHIPPED + "dictionary", include)


def _read(target: Path, includer: str) -> tuple[str, str]:
    try:
        return str(target), target.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DictionaryError(includer, 0, f"cannot read {target}: {exc}") from None


def load_dictionary(path: Path) -> Dictionary:
    """A FreeRADIUS-format dictionary file; a relative $INCLUDE resolves beside the file
    that includes it. An unreadable file is a DictionaryError naming it."""

    def include(name: str, includer: str) -> tuple[str, str]:
        target = Path(name) if Path(name).is_absolute() else Path(includer).parent / name
        return _read(target, includer)

    source, text = _read(path, str(path))
    return parse_dictionary(text, source, include)
