"""The RADIUS dictionaries on disk: the ones shipped in netaccess/proto/radius/dictionaries
(the RFC attributes, Cisco and Microsoft), and a site's own FreeRADIUS-format files."""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

from netaccess.proto.radius.dictionary import Dictionary, parse_dictionary
from netaccess.proto.radius.errors import DictionaryError


@functools.cache
def standard_dictionary() -> Dictionary:
    """The shipped dictionary (its top file $INCLUDEs the rest); parsed once."""
    folder = resources.files("netaccess.proto.radius").joinpath("dictionaries")

    def read(name: str, includer: str) -> tuple[str, str]:
        if "/" in name or name.startswith("."):
            raise DictionaryError(includer, 0, f"$INCLUDE {name}: only files beside it")
        return f"dictionaries/{name}", folder.joinpath(name).read_text("utf-8")

    top = folder.joinpath("dictionary").read_text("utf-8")
    return parse_dictionary(top, "dictionaries/dictionary", read)


def load_dictionary(path: Path) -> Dictionary:
    """A FreeRADIUS-format dictionary file; a relative $INCLUDE resolves beside the file
    that includes it. An unreadable file is a DictionaryError naming it."""

    def read(target: Path, includer: str) -> tuple[str, str]:
        try:
            return str(target), target.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DictionaryError(includer, 0, f"cannot read {target}: {exc}") from None

    def include(name: str, includer: str) -> tuple[str, str]:
        target = Path(name) if Path(name).is_absolute() else Path(includer).parent / name
        return read(target, includer)

    source, text = read(path, str(path))
    return parse_dictionary(text, source, include)
