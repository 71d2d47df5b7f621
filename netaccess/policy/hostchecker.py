"""Host Checker: policies of rules over an endpoint's posture, judged by a pure function.

`evaluate(policy, facts, feed, now)` gives a verdict (compliant, non-compliant, unknown)
with a trace per rule (what was seen, what was required, pass/fail/unknown) and the
remediation of the rules that failed. A fact the endpoint did not report makes its rule
unknown, never a silent pass. The facts come from a posture report's attributes
(`facts_from_report`), so live sessions and stored reports (what-if) are judged alike.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from itertools import compress, repeat
from operator import itemgetter
from typing import Any, Generic, Protocol, TypeVar

from netaccess.policy.debversion import DebianVersionError, compare_versions, parse_version
from netaccess.policy.expression import (
    And,
    Expression,
    Name,
    Not,
    Or,
    Truth,
    all_of,
    evaluate_expression,
    names_in,
)
from netaccess.policy.feed import PatchFeed
from netaccess.policy.posture import ReportedAttribute

_V = TypeVar("_V")


class Platform(enum.Enum):
    WINDOWS = "windows"
    MACOS = "macos"
    LINUX = "linux"
    IOS = "ios"
    ANDROID = "android"

    @property
    def mobile(self) -> bool:
        return self in (Platform.IOS, Platform.ANDROID)


class AgentAction(enum.Enum):
    """What the agent may do on its own to fix a failed rule."""

    TRIGGER_PATCH_MANAGER = "trigger_patch_manager"
    ENABLE_FIREWALL = "enable_firewall"
    START_ANTIVIRUS = "start_antivirus"
    UPDATE_SIGNATURES = "update_signatures"


class Severity(enum.Enum):
    UNKNOWN = "unknown"
    LOW = "low"
    MODERATE = "moderate"
    IMPORTANT = "important"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True)
class Remediation:
    instructions: str = ""
    link: str = ""
    action: AgentAction | None = None


# --- facts ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProtectionFact:
    """An antivirus or anti-spyware product (our vendor attribute type 1)."""

    product: str
    running: bool
    real_time: bool
    signature_age: int | None  # seconds, None when the endpoint does not know


@dataclass(frozen=True, slots=True)
class PatchManagerFact:
    product: str
    enabled: bool
    missing: tuple[tuple[str, Severity], ...]  # (patch id, severity)


@dataclass(frozen=True, slots=True)
class CertificateFact:
    store: str
    subject: str
    issuer: str
    not_after: str  # ISO 8601


@dataclass(frozen=True, slots=True)
class PostureFacts:
    """What an endpoint reported, normalised. None: the endpoint reported nothing of that
    kind (the rule is unknown); an empty collection: it reported none."""

    platform: Platform | None = None
    os_name: str | None = None
    os_version: str | None = None
    service_pack: int | None = None
    packages: Mapping[str, str] | None = None
    antivirus: tuple[ProtectionFact, ...] | None = None
    antispyware: tuple[ProtectionFact, ...] | None = None
    firewall_profiles: Mapping[str, bool] | None = None
    patch_managers: tuple[PatchManagerFact, ...] | None = None
    processes: tuple[tuple[str, str], ...] | None = None  # (name, path)
    files: Mapping[str, str] | None = None  # path -> sha256 hex
    registry: Mapping[tuple[str, str], str] | None = None  # (key, value name) -> data
    ports: Mapping[tuple[int, int], bool] | None = None  # (protocol, port) -> blocked
    certificates: tuple[CertificateFact, ...] | None = None


IETF = 0
_OS, _ANTIVIRUS, _ANTISPYWARE = 1, 2, 3
_PLATFORM_OF_PRODUCT = (
    (re.compile(r"windows", re.I), Platform.WINDOWS),
    (re.compile(r"mac ?os|os x|darwin", re.I), Platform.MACOS),
    (re.compile(r"\bios\b|ipados|iphone", re.I), Platform.IOS),
    (re.compile(r"android", re.I), Platform.ANDROID),
    (
        re.compile(r"debian|ubuntu|fedora|red hat|rhel|suse|linux|centos|alma|rocky|arch", re.I),
        Platform.LINUX,
    ),
)


def platform_of(product: str) -> Platform | None:
    try:
        return _PLATFORM_OF_NAME[product]
    except KeyError:
        pass
    found = None
    for pattern, platform in _PLATFORM_OF_PRODUCT:
        if pattern.search(product):
            found = platform
            break
    if len(_PLATFORM_OF_NAME) >= _PLATFORM_NAMES_KEPT:
        _PLATFORM_OF_NAME.clear()
    _PLATFORM_OF_NAME[product] = found
    return found


# OS product names seen (a fleet has a handful), so the patterns run once per name.
_PLATFORM_OF_NAME: dict[str, Platform | None] = {}
_PLATFORM_NAMES_KEPT = 1024


def facts_from_report(attributes: Iterable[ReportedAttribute]) -> PostureFacts:
    """Facts from a report's attributes (their JSON values, as stored)."""
    found: dict[str, Any] = {}
    antivirus: list[ProtectionFact] = []
    antispyware: list[ProtectionFact] = []
    for attribute in attributes:
        value = attribute.value if isinstance(attribute.value, dict) else {}
        name = attribute.name
        if name == "ProductInformation" and attribute.component_subtype == _OS:
            found["os_name"] = str(value.get("name", ""))
            found["platform"] = platform_of(found["os_name"])
        elif name == "StringVersion" and attribute.component_subtype == _OS:
            found["os_version"] = str(value.get("version", ""))
        elif name == "NumericVersion" and attribute.component_subtype == _OS:
            found["service_pack"] = _int(value.get("service_pack_major"))
            found.setdefault("os_version", f"{value.get('major')}.{value.get('minor')}")
        elif name == "InstalledPackages":
            pairs = value.get("packages", ())
            plain = _plain_packages(pairs)
            packages = found.get("packages")
            if packages is None:
                packages = found["packages"] = {} if plain is None else plain
            elif plain is not None:
                packages.update(plain)
            if plain is None:
                for pair in pairs:
                    if isinstance(pair, list | tuple) and len(pair) == 2:
                        packages[str(pair[0])] = str(pair[1])
        elif name == "Antivirus":
            fact = ProtectionFact(
                str(value.get("product", "")),
                bool(value.get("running")),
                bool(value.get("real_time_protection")),
                _int(value.get("signature_age")),
            )
            (antispyware if attribute.component_subtype == _ANTISPYWARE else antivirus).append(fact)
        elif name == "Firewall":
            profiles = found.setdefault("firewall_profiles", {})
            for profile in value.get("profiles", ()):
                profiles[str(profile.get("name", ""))] = bool(profile.get("enabled"))
        elif name == "PatchManagement":
            missing = tuple(
                (str(patch.get("id", "")), _severity(patch.get("severity")))
                for patch in value.get("missing", ())
            )
            found.setdefault("patch_managers", []).append(
                PatchManagerFact(str(value.get("product", "")), bool(value.get("enabled")), missing)
            )
        elif name == "RunningProcesses":
            processes = value.get("processes", ())
            found["processes"] = _plain_processes(processes) or tuple(
                [(str(p.get("name", "")), str(p.get("path", ""))) for p in processes]
            )
        elif name == "FileHashes":
            found["files"] = {
                str(f.get("path", "")): str(f.get("sha256", "")).lower()
                for f in value.get("files", ())
            }
        elif name == "RegistryValues":
            found["registry"] = {
                (str(v.get("key", "")).lower(), str(v.get("name", "")).lower()): str(
                    v.get("data", "")
                )
                for v in value.get("values", ())
            }
        elif name == "PortFilter":
            found["ports"] = {
                (int(e.get("protocol", 0)), int(e.get("port", 0))): bool(e.get("blocked"))
                for e in value.get("entries", ())
            }
        elif name == "Certificates":
            found["certificates"] = _certificates(value.get("certificates", ()))
    if antivirus:
        found["antivirus"] = tuple(antivirus)
    if antispyware:
        found["antispyware"] = tuple(antispyware)
    if "patch_managers" in found:
        found["patch_managers"] = tuple(found["patch_managers"])
    return PostureFacts(**found)


def _certificates(reported: Iterable[Any]) -> tuple[CertificateFact, ...]:
    """The reported certificates' facts, each made once per value (_CERTIFICATE_FACTS): the
    endpoints of a fleet report the same trust store."""
    facts = []
    kept = _CERTIFICATE_FACTS
    for certificate in reported:
        key = (
            str(certificate.get("store", "")),
            str(certificate.get("subject", "")),
            str(certificate.get("issuer", "")),
            str(certificate.get("not_after", "")),
        )
        fact = kept.get(key)
        if fact is None:
            if len(kept) >= _CERTIFICATES_KEPT:
                kept.clear()
            fact = kept[key] = CertificateFact(*key)
        facts.append(fact)
    return tuple(facts)


_CERTIFICATE_FACTS: dict[tuple[str, str, str, str], CertificateFact] = {}
_CERTIFICATES_KEPT = 4096


def _plain_packages(pairs: object) -> dict[str, str] | None:
    """`pairs` as a dict when every entry is a [name, version] list (or tuple) of two
    strings, as in every well-formed report; built and checked in C, it costs half the loop
    over the entries. None for anything else: the caller walks the entries one by one."""
    if type(pairs) is not list and type(pairs) is not tuple:
        return None
    kinds = list(map(type, pairs))
    size = len(kinds)
    try:
        lists = kinds.count(list)
        if lists == size or lists + kinds.count(tuple) == size:
            packages = dict(pairs)  # ValueError: an entry of another length than two
        elif all(map(_plain_pair_type, set(kinds))):
            # pa.Package (a NamedTuple), as a live session's attribute holds them: dict()
            # would copy each into a list first.
            if list(map(len, pairs)).count(2) != size:
                return None
            packages = dict(zip(map(_FIRST, pairs), map(_SECOND, pairs), strict=True))
        else:
            return None
    except (TypeError, ValueError):  # TypeError: an unhashable name
        return None
    try:  # every name and version a string: join refuses anything else, in C, at once
        "".join(packages)
        "".join(packages.values())
    except TypeError:
        return None
    return packages


_FIRST, _SECOND = itemgetter(0), itemgetter(1)


def _plain_processes(processes: object) -> tuple[tuple[str, str], ...] | None:
    """The (name, path) of each process when `processes` is a non-empty list of dicts that
    all have a string name and path, as every well-formed report has, read in C; None for
    anything else (the caller reads the entries one by one)."""
    if type(processes) is not list or list(map(type, processes)).count(dict) != len(processes):
        return None
    try:
        pairs = tuple(map(_NAME_AND_PATH, processes))
        "".join(map(_FIRST, pairs))
        "".join(map(_SECOND, pairs))
    except (KeyError, TypeError):
        return None
    return pairs or None


_NAME_AND_PATH = itemgetter("name", "path")


_Pick = Callable[[Mapping[str, Any]], Sequence[Any]]


def _picker(keys: Collection[str]) -> _Pick:
    """What gives mapping[key] for each of `keys`, in their order (KeyError if one is not
    there): in one C call when there are two or more."""
    if len(keys) > 1:
        return itemgetter(*keys)
    return lambda mapping: [mapping[key] for key in keys]


def _plain_pair_type(kind: type) -> bool:
    """list, tuple, or a subclass that reads as one (a NamedTuple such as pa.Package)."""
    for base in (tuple, list):
        if issubclass(kind, base):
            return all(
                getattr(kind, method) is getattr(base, method)
                for method in ("__iter__", "__getitem__", "__len__")
            )
    return False


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _severity(value: object) -> Severity:
    return _SEVERITY_OF.get(str(value).lower(), Severity.UNKNOWN)


# Severity(text) as a plain dict: the Enum call costs several times the lookup.
_SEVERITY_OF = {severity.value: severity for severity in Severity}


# --- the patch feed, as rules see it -----------------------------------------------------


class FeedProduct(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def latest_version(self) -> str: ...


class FeedPatch(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def product(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def released(self) -> date: ...
    @property
    def fixed_version(self) -> str: ...


class PatchCatalog(Protocol):
    """What patch rules need from the patch feed (netaccess.policy.feed)."""

    def product_named(self, name: str, platform: str) -> FeedProduct | None: ...

    def product_by_id(self, product_id: str) -> FeedProduct | None: ...

    def patch(self, patch_id: str) -> FeedPatch | None: ...


# --- rules ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleResult:
    rule: str
    kind: str
    outcome: Truth
    seen: str
    required: str


@dataclass(frozen=True, slots=True)
class Context:
    facts: PostureFacts
    feed: PatchCatalog | None
    now: datetime
    platform: Platform
    # What the rules of one evaluation derive from these facts and share (the running
    # processes' names lower-cased), made once, by the first rule that needs it.
    derived: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def process_names(self) -> list[str] | None:
        """The reported processes' names, lower-cased, in report order."""
        derived = self.derived
        if "process_names" in derived:  # not try/except: the first rule would always raise
            found: list[str] | None = derived["process_names"]
            return found
        processes = self.facts.processes
        lowered = None if processes is None else list(map(str.lower, map(_FIRST, processes)))
        derived["process_names"] = lowered
        return lowered


def version_compare(a: str, b: str, platform: Platform) -> int:
    """Debian's algorithm on Linux (its packages), dotted numbers elsewhere. Results are
    kept (_LINUX_ORDER, _DOTTED_ORDER): a fleet reports the same versions over and over."""
    cache = _LINUX_ORDER if platform is _LINUX else _DOTTED_ORDER
    key = (a, b)
    found = cache.young.get(key)
    if found is None:
        found = cache.old.get(key)
        if found is None:
            found = _version_compare(a, b, platform)
        cache.put(key, found)
    return found


def _version_compare(a: str, b: str, platform: Platform) -> int:
    if platform is _LINUX:
        try:
            return compare_versions(a, b)
        except DebianVersionError:
            pass
    left, right = _numbers(a), _numbers(b)
    return (left > right) - (left < right)


def _numbers(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:8])


# --- caches shared by evaluations ---------------------------------------------------------
#
# Evaluations of different endpoints share what depends only on versions, on the feed or on
# one small fact, never anything about one report: the order of two version strings, the
# feed's products by name, the results of the rules that read one small fact (below, at
# _RULE_MEMOS) and the platform of OS names. All bounded; clear_caches() empties them (the
# cold figure of tools/bench/policy.py). A fleet reports the same versions over and over.

_ORDER_GENERATION = 8192  # version pairs per generation: ~2.5 MB at most per _Recent
_FEED_INDEXES_KEPT = 2  # the current feed and the one it replaced


class _Recent(Generic[_V]):
    """A bounded cache that keeps what was used lately, as an LRU would, for the price of one
    dict lookup per hit: when the young generation is full it becomes the old one (the
    previous old one is dropped), and a hit in the old generation is copied to the young."""

    __slots__ = ("limit", "old", "young")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.young: dict[tuple[str, str], _V] = {}
        self.old: dict[tuple[str, str], _V] = {}

    def put(self, key: tuple[str, str], value: _V) -> None:
        if len(self.young) >= self.limit:
            self.old = self.young
            self.young = {}
        self.young[key] = value

    def clear(self) -> None:
        self.young, self.old = {}, {}


_LINUX_ORDER: _Recent[int] = _Recent(_ORDER_GENERATION)  # Debian's order (or dotted)
_DOTTED_ORDER: _Recent[int] = _Recent(_ORDER_GENERATION)  # every other platform


class _Counting(dict[str, bool]):
    """Per product name, filled as asked: whether its latest patch counts for a patch rule
    (the feed has no such patch, or it is of a severity not ignored and out of its grace
    period), for one feed, set of ignored severities, grace period and day."""

    __slots__ = ("feed", "grace", "ignored", "products", "today")

    def __init__(
        self,
        feed: PatchFeed,
        products: Mapping[str, Any],
        ignored: frozenset[Severity],
        grace: timedelta,
        today: date,
    ) -> None:
        super().__init__()
        self.feed, self.products = feed, products
        self.ignored, self.grace, self.today = ignored, grace, today

    def __missing__(self, name: str) -> bool:
        product = self.products[name]
        patch = self.feed.patch(f"{product.id}/{product.latest_version}")
        counts = patch is None or (
            _severity(patch.severity) not in self.ignored
            and patch.released + self.grace <= self.today
        )
        self[name] = counts
        return counts


@dataclass(slots=True)
class _Missing:
    """What patch rules by product show, for one feed index and one (ignored severities,
    grace days, day): per product name and installed version, "name installed < latest"
    when that version misses a patch that counts, else "". Keyed by name, then by the
    version alone: a lookup hashes the (fresh) version string and nothing else."""

    index: _FeedIndex
    counting: _Counting
    texts: dict[str, dict[str, str]] = field(default_factory=dict)

    def texts_of(self, names: Collection[str], installed: Sequence[str], pick: _Pick) -> list[str]:
        """The text of each of `installed`, the versions of the products `names` (which
        the index knows); `pick` picks their values out of a mapping (_picker(names))."""
        try:
            kept: Iterable[dict[str, str]] = pick(self.texts)
        except KeyError:  # a name not seen yet
            kept = map(self.texts.get, names, repeat(_NONE_KEPT))
        found: list[str | None] = list(map(dict.get, kept, installed))
        try:
            "".join(found)  # type: ignore[arg-type]
        except TypeError:  # a None: a version not kept
            found = [
                self._text(name, version) if text is None else text
                for text, name, version in zip(found, names, installed, strict=True)
            ]
        return found  # type: ignore[return-value]

    def _text(self, name: str, version: str) -> str:
        index = self.index
        if index.texts_kept >= _TEXTS_KEPT:
            for missing in index.missing.values():
                missing.texts.clear()
            index.texts_kept = 0
        latest = index.products[name].latest_version
        text = ""
        if version_compare(version, latest, index.platform) < 0 and self.counting[name]:
            text = f"{name} {version} < {latest}"
            if " " in name or not name.isprintable():  # what sorts before the space
                index.texts_sort_by_name = False
        kept = self.texts.get(name)
        if kept is None:
            kept = self.texts[name] = {}
        kept[version] = text
        index.texts_kept += 1
        return text


@dataclass(slots=True)
class _FeedIndex:
    """One PatchFeed's products of one platform by name (the first of a name, as
    product_named gives it), their names as a set, and the _Missing of the patch rules that
    asked. Kept for the feed object itself: a PatchFeed is frozen, a new feed is a new
    object."""

    feed: PatchFeed
    platform: Platform
    products: dict[str, Any]
    names: frozenset[str] = field(init=False)
    # No name in a text of `missing` has a character at or below the space (False once one
    # may have): the texts, "name installed < latest", then sort as their names do (a name
    # sorts before the longer names it starts, and its text before theirs).
    texts_sort_by_name: bool = field(init=False, default=True)
    missing: dict[tuple[frozenset[Severity], int, date], _Missing] = field(
        init=False, default_factory=dict
    )
    texts_kept: int = field(init=False, default=0)  # in all of `missing`

    def __post_init__(self) -> None:
        self.names = frozenset(self.products)

    def missing_for(self, rule: PatchRule, today: date) -> _Missing:
        key = (rule.ignore_severities, rule.grace_days, today)
        found = self.missing.get(key)
        if found is None:
            if len(self.missing) >= _COUNTINGS_KEPT:
                self.missing.clear()
                self.texts_kept = 0
            counting = _Counting(
                self.feed,
                self.products,
                rule.ignore_severities,
                timedelta(days=rule.grace_days),
                today,
            )
            found = self.missing[key] = _Missing(self, counting)
        return found


_NONE_KEPT: dict[str, str] = {}  # the texts of a name not seen yet (never written to)
_TEXTS_KEPT = 2 * _ORDER_GENERATION  # (name, installed version) per feed index
_COUNTINGS_KEPT = 16  # (ignored severities, grace days, day) per feed index
_FEED_INDEXES: dict[tuple[int, Platform], _FeedIndex] = {}


def _feed_index(feed: PatchFeed, platform: Platform) -> _FeedIndex:
    key = (id(feed), platform)
    index = _FEED_INDEXES.get(key)
    if index is not None and index.feed is feed:
        return index
    wanted = platform.value
    # Backwards, so that the first product of a name is the one left (as product_named).
    products: dict[str, Any] = {p.name: p for p in reversed(feed.products) if p.platform == wanted}
    index = _FeedIndex(feed, platform, products)
    while len({id(i.feed) for i in _FEED_INDEXES.values()} | {id(feed)}) > _FEED_INDEXES_KEPT:
        del _FEED_INDEXES[next(iter(_FEED_INDEXES))]  # the oldest
    _FEED_INDEXES[key] = index
    return index


def clear_caches() -> None:
    """Forget everything kept between evaluations: version orders, feed indexes (with their
    patch texts), rule results and texts, OS platforms, certificate facts, and debversion's
    parsed versions."""
    for kept in (_LINUX_ORDER, _DOTTED_ORDER):
        kept.clear()
    _FEED_INDEXES.clear()
    _RULE_MEMOS.clear()
    _WORDINGS.clear()
    _PLATFORM_OF_NAME.clear()
    _CERTIFICATE_FACTS.clear()
    parse_version.cache_clear()


def _result(rule: Rule, ok: bool | None, seen: str, required: str) -> RuleResult:
    outcome = _UNKNOWN if ok is None else (_TRUE if ok else _FALSE)
    return RuleResult(rule.name, rule.kind, outcome, seen, required)


# Results of the rules whose outcome follows from one small fact (the OS, one package's
# version, one file's hash, one port, one registry value), by that fact: endpoints of a
# fleet report the same ones, and a hit costs a lookup instead of a check and its text.
# Kept per rule object (held here, so its id is not reused while kept).
_RULE_MEMOS: dict[int, tuple[Rule, dict[Any, RuleResult]]] = {}
_RULES_KEPT = 4096
_RESULTS_KEPT = 1024  # per rule
_NOTHING = object()  # the endpoint reported no such facts at all
_ABSENT = object()  # it reported them, without this one


def _recalled(rule: Rule, key: Any) -> RuleResult | None:
    entry = _RULE_MEMOS.get(id(rule))
    if entry is None or entry[0] is not rule:
        return None
    return entry[1].get(key)


def _remember(rule: Rule, key: Any, result: RuleResult) -> RuleResult:
    entry = _RULE_MEMOS.get(id(rule))
    if entry is None or entry[0] is not rule:
        if len(_RULE_MEMOS) >= _RULES_KEPT:
            _RULE_MEMOS.clear()
        entry = _RULE_MEMOS[id(rule)] = (rule, {})
    memo = entry[1]
    if len(memo) >= _RESULTS_KEPT:
        memo.clear()
    memo[key] = result
    return result


# The rules that read many facts (patch, antivirus, firewall, patch management, process,
# certificate) run on every evaluation, but their `required` text depends on the rule alone
# and each result on its outcome and `seen` text, which a fleet's endpoints repeat: both are
# kept per rule object (held here, as in _RULE_MEMOS), so an evaluation writes neither anew.


@dataclass(slots=True)
class _Wording:
    rule: Rule
    required: str
    results: dict[tuple[bool | None, str], RuleResult] = field(default_factory=dict)

    def result(self, ok: bool | None, seen: str) -> RuleResult:
        key = (ok, seen)
        found = self.results.get(key)
        if found is None:
            if len(self.results) >= _RESULTS_KEPT:
                self.results.clear()
            found = self.results[key] = _result(self.rule, ok, seen, self.required)
        return found


_WORDINGS: dict[int, _Wording] = {}


def _wording(rule: Rule, required: Callable[[], str]) -> _Wording:
    found = _WORDINGS.get(id(rule))
    if found is None or found.rule is not rule:
        if len(_WORDINGS) >= _RULES_KEPT:
            _WORDINGS.clear()
        found = _WORDINGS[id(rule)] = _Wording(rule, required())
    return found


@dataclass(frozen=True, slots=True)
class OsRule:
    name: str
    os: str  # a substring of the reported OS name, e.g. "Debian", "Windows 11"
    min_version: str = ""
    min_service_pack: int | None = None
    remediation: Remediation = Remediation()
    kind = "os"

    def check(self, ctx: Context) -> RuleResult:
        facts = ctx.facts
        key = (
            facts.os_name,
            facts.os_version,
            facts.service_pack,
            type(facts.service_pack),
            ctx.platform is _LINUX,
        )
        return _recalled(self, key) or _remember(self, key, self._check(ctx))

    def _check(self, ctx: Context) -> RuleResult:
        facts = ctx.facts
        required = " ".join(
            part
            for part in (
                self.os,
                f">= {self.min_version}" if self.min_version else "",
                f"SP >= {self.min_service_pack}" if self.min_service_pack is not None else "",
            )
            if part
        )
        if facts.os_name is None:
            return _result(self, None, "no OS reported", required)
        seen = f"{facts.os_name} {facts.os_version or '?'}"
        if self.os.lower() not in facts.os_name.lower():
            return _result(self, False, seen, required)
        if self.min_version:
            if facts.os_version is None:
                return _result(self, None, seen, required)
            if version_compare(facts.os_version, self.min_version, ctx.platform) < 0:
                return _result(self, False, seen, required)
        if self.min_service_pack is not None:
            if facts.service_pack is None:
                return _result(self, None, f"{seen}, no service pack reported", required)
            seen += f" SP{facts.service_pack}"
            if facts.service_pack < self.min_service_pack:
                return _result(self, False, seen, required)
        return _result(self, True, seen, required)


@dataclass(frozen=True, slots=True)
class SoftwareRule:
    """A product installed at a minimum version (from the Installed Packages list)."""

    name: str
    product: str
    min_version: str
    remediation: Remediation = Remediation()
    kind = "software"

    def check(self, ctx: Context) -> RuleResult:
        packages = ctx.facts.packages
        installed = _NOTHING if packages is None else packages.get(self.product)
        key = (installed, ctx.platform is _LINUX)
        return _recalled(self, key) or _remember(self, key, self._check(ctx))

    def _check(self, ctx: Context) -> RuleResult:
        required = f"{self.product} >= {self.min_version}"
        packages = ctx.facts.packages
        if packages is None:
            return _result(self, None, "no package list reported", required)
        installed = packages.get(self.product)
        if installed is None:
            return _result(self, False, f"{self.product} not installed", required)
        ok = version_compare(installed, self.min_version, ctx.platform) >= 0
        return _result(self, ok, f"{self.product} {installed}", required)


_SHOWN_MISSING = 20  # missing products or patches named in a patch rule's trace


@dataclass(frozen=True, slots=True)
class PatchRule:
    """Either whole products at the feed's latest version (`products`; ["*"]: every
    installed package the feed knows), or specific patches (`patches`). Patches of
    ignored severities, and patches released less than `grace_days` ago, do not count."""

    name: str
    products: tuple[str, ...] = ()
    patches: tuple[str, ...] = ()
    ignore_severities: frozenset[Severity] = frozenset()
    grace_days: int = 0
    remediation: Remediation = Remediation()
    kind = "patch"

    @property
    def by_product(self) -> bool:
        return bool(self.products)

    def _required(self) -> str:
        required = (
            f"latest versions of {', '.join(self.products)}"
            if self.by_product
            else f"patches {', '.join(self.patches)}"
        )
        if self.ignore_severities:
            ignored = ", ".join(sorted(s.value for s in self.ignore_severities))
            required += f" (ignoring {ignored})"
        return required

    def check(self, ctx: Context) -> RuleResult:
        said = _wording(self, self._required)
        if ctx.feed is None:
            return said.result(None, "no patch feed loaded")
        packages = ctx.facts.packages
        if self.by_product and packages is not None:
            found = self._missing_products(ctx, packages)
            if found is None:
                return said.result(None, "the feed does not know these products")
            count, shown = found
        elif not self.by_product and (packages is not None or ctx.facts.patch_managers):
            missing = self._missing_patches(ctx, packages)
            count, shown = len(missing), missing[:_SHOWN_MISSING]
        else:
            return said.result(None, "no package list reported")
        seen = "none missing" if not count else "missing: " + ", ".join(shown)
        if count > _SHOWN_MISSING:
            seen += f" (+{count - _SHOWN_MISSING} more)"
        return said.result(not count, seen)

    def _counts(self, severity: str, released: date, now: datetime) -> bool:
        if _severity(severity) in self.ignore_severities:
            return False
        return released + timedelta(days=self.grace_days) <= now.date()

    def _missing_products(
        self, ctx: Context, packages: Mapping[str, str]
    ) -> tuple[int, list[str]] | None:
        """How many products are missing their latest patch, and the first _SHOWN_MISSING
        as "name installed < latest"; None when the feed knows none of the named ones."""
        feed = ctx.feed
        if isinstance(feed, PatchFeed):
            return self._missing_products_indexed(_feed_index(feed, ctx.platform), ctx, packages)
        assert feed is not None
        every = self.products == ("*",)
        names = sorted(packages) if every else list(self.products)
        missing: list[str] = []
        count = known = 0
        for name in names:
            product = feed.product_named(name, ctx.platform.value)
            if product is None:
                continue
            known += 1
            installed = packages.get(name)
            if installed is None:
                continue  # not installed: nothing to patch
            if version_compare(installed, product.latest_version, ctx.platform) >= 0:
                continue
            patch = feed.patch(f"{product.id}/{product.latest_version}")
            if patch is not None and not self._counts(patch.severity, patch.released, ctx.now):
                continue
            count += 1
            if count <= _SHOWN_MISSING:
                missing.append(f"{name} {installed} < {product.latest_version}")
        return (count, missing) if known or every else None

    def _missing_products_indexed(
        self, index: _FeedIndex, ctx: Context, packages: Mapping[str, str]
    ) -> tuple[int, list[str]] | None:
        """_missing_products against a PatchFeed's index, in C as far as it goes: only the
        installed packages the feed knows are looked at (a set intersection), and what each
        (name, installed version) shows, its text when it misses a patch that counts, is
        kept per feed, rule settings and day (_Missing): warm, the texts are looked up."""
        every = self.products == ("*",)
        if every:
            names: Collection[str] = index.names.intersection(packages)
            known = 1
        else:
            names = [name for name in self.products if name in index.names]
            known = len(names)
            names = [name for name in names if name in packages]
        pick = _picker(names)
        texts = index.missing_for(self, ctx.now.date()).texts_of(names, pick(packages), pick)
        missing = list(filter(None, texts))
        if not missing:
            return (0, []) if known else None
        if every:
            if index.texts_sort_by_name:
                missing.sort()
            else:
                order = sorted(zip(compress(names, texts), missing, strict=True))
                missing = [text for _, text in order]
        return len(missing), missing[:_SHOWN_MISSING]

    def _missing_patches(self, ctx: Context, packages: Mapping[str, str] | None) -> list[str]:
        assert ctx.feed is not None
        reported_missing = {
            patch_id
            for manager in ctx.facts.patch_managers or ()
            for patch_id, _ in manager.missing
        }
        missing = []
        for patch_id in self.patches:
            patch = ctx.feed.patch(patch_id)
            if patch is None:
                if patch_id in reported_missing:
                    missing.append(patch_id)
                continue
            if not self._counts(patch.severity, patch.released, ctx.now):
                continue
            if patch_id in reported_missing:
                missing.append(patch_id)
                continue
            product = ctx.feed.product_by_id(patch.product)
            if packages is None or product is None:
                continue
            installed = packages.get(product.name)
            if installed is not None and (
                version_compare(installed, patch.fixed_version, ctx.platform) < 0
            ):
                missing.append(patch_id)
        return missing


@dataclass(frozen=True, slots=True)
class ProtectionRule:
    """Antivirus (or anti-spyware): a product running with real-time protection, with
    signatures no older than `max_signature_days`."""

    name: str
    max_signature_days: int | None = None
    product: str = ""  # a substring of the product name; "": any
    antispyware: bool = False
    remediation: Remediation = Remediation()

    @property
    def kind(self) -> str:
        return "antispyware" if self.antispyware else "antivirus"

    def _required(self) -> str:
        required = (self.product or f"an {self.kind} product") + ", running, real-time"
        if self.max_signature_days is not None:
            required += f", signatures <= {self.max_signature_days} days old"
        return required

    def check(self, ctx: Context) -> RuleResult:
        said = _wording(self, self._required)
        products = ctx.facts.antispyware if self.antispyware else ctx.facts.antivirus
        if products is None:
            return said.result(None, f"no {self.kind} reported")
        candidates = [p for p in products if self.product.lower() in p.product.lower()]
        if not candidates:
            return said.result(False, "not installed")
        unknown_age = False
        for product in candidates:
            if not (product.running and product.real_time):
                continue
            if self.max_signature_days is None:
                return said.result(True, f"{product.product} running")
            if product.signature_age is None:
                unknown_age = True
                continue
            if product.signature_age <= self.max_signature_days * 86400:
                days = product.signature_age / 86400
                return said.result(True, f"{product.product}, signatures {days:.1f} days")
        seen = "; ".join(
            f"{p.product}: {'running' if p.running else 'stopped'}, "
            f"real-time {'on' if p.real_time else 'off'}, signatures "
            + ("age unknown" if p.signature_age is None else f"{p.signature_age / 86400:.1f} days")
            for p in candidates
        )
        return said.result(None if unknown_age else False, seen)


@dataclass(frozen=True, slots=True)
class FirewallRule:
    """The firewall on in every reported profile (or in the ones named)."""

    name: str
    profiles: tuple[str, ...] = ()
    remediation: Remediation = Remediation()
    kind = "firewall"

    def _required(self) -> str:
        return "enabled" + (f" in {', '.join(self.profiles)}" if self.profiles else "")

    def check(self, ctx: Context) -> RuleResult:
        said = _wording(self, self._required)
        profiles = ctx.facts.firewall_profiles
        if profiles is None:
            return said.result(None, "no firewall reported")
        wanted = self.profiles or tuple(profiles)
        if not wanted:
            return said.result(False, "no firewall profiles")
        states = {name: profiles.get(name) for name in wanted}
        seen = ", ".join(
            f"{n}: {'on' if s else 'off' if s is not None else 'not reported'}"
            for n, s in states.items()
        )
        if any(state is False for state in states.values()):
            return said.result(False, seen)
        if any(state is None for state in states.values()):
            return said.result(None, seen)
        return said.result(True, seen)


@dataclass(frozen=True, slots=True)
class PatchManagementRule:
    """Patch-management software present and enabled, with no missing patches (of the
    severities that count)."""

    name: str
    product: str = ""
    max_missing: int = 0
    ignore_severities: frozenset[Severity] = frozenset()
    remediation: Remediation = Remediation()
    kind = "patch_management"

    def _required(self) -> str:
        return f"{self.product or 'a patch manager'} enabled, <= {self.max_missing} missing"

    def check(self, ctx: Context) -> RuleResult:
        said = _wording(self, self._required)
        managers = ctx.facts.patch_managers
        if managers is None:
            return said.result(None, "no patch management reported")
        candidates = [m for m in managers if self.product.lower() in m.product.lower()]
        if not candidates:
            return said.result(False, "none installed")
        best = None
        for manager in candidates:
            counted = [pid for pid, sev in manager.missing if sev not in self.ignore_severities]
            if manager.enabled and len(counted) <= self.max_missing:
                return said.result(True, f"{manager.product}: {len(counted)} missing")
            best = best or (manager, counted)
        manager, counted = best if best else (candidates[0], [])
        state = "enabled" if manager.enabled else "disabled"
        seen = f"{manager.product} {state}, missing: {', '.join(counted[:10]) or 'none'}"
        return said.result(False, seen)


@dataclass(frozen=True, slots=True)
class ProcessRule:
    """A process running (or absent), optionally with its executable's SHA-256."""

    name: str
    process: str
    running: bool = True
    sha256: str = ""
    remediation: Remediation = Remediation()
    kind = "process"

    def _required(self) -> str:
        required = f"{self.process} {'running' if self.running else 'not running'}"
        if self.sha256:
            required += f" with SHA-256 {self.sha256[:16]}…"
        return required

    def check(self, ctx: Context) -> RuleResult:
        said = _wording(self, self._required)
        names = ctx.process_names()
        if names is None:
            return said.result(None, "no process list reported")
        wanted = self.process.lower()
        count = names.count(wanted)
        if count and self.running and self.sha256:  # the matching executables' hashes
            processes = ctx.facts.processes
            assert processes is not None
            matching = []
            at = -1
            for _ in range(count):
                at = names.index(wanted, at + 1)
                matching.append(processes[at][1])
            files = ctx.facts.files
            if files is None:
                return said.result(None, "running; no file hashes reported")
            hashes = {files.get(path) for path in matching}
            if self.sha256.lower() not in hashes:
                return said.result(False, "running with another SHA-256")
        seen = f"{count} running" if count else "not running"
        return said.result(bool(count) == self.running, seen)


@dataclass(frozen=True, slots=True)
class FileRule:
    name: str
    path: str
    sha256: str = ""
    remediation: Remediation = Remediation()
    kind = "file"

    def check(self, ctx: Context) -> RuleResult:
        files = ctx.facts.files
        key = _NOTHING if files is None else files.get(self.path, _ABSENT)
        return _recalled(self, key) or _remember(self, key, self._check(ctx))

    def _check(self, ctx: Context) -> RuleResult:
        required = f"{self.path} present" + (
            f", SHA-256 {self.sha256[:16]}…" if self.sha256 else ""
        )
        files = ctx.facts.files
        if files is None:
            return _result(self, None, "no file hashes reported", required)
        if self.path not in files:
            return _result(self, False, "absent", required)
        digest = files[self.path]
        if self.sha256 and digest != self.sha256.lower():
            return _result(self, False, f"SHA-256 {digest[:16]}…", required)
        return _result(self, True, "present", required)


@dataclass(frozen=True, slots=True)
class RegistryRule:
    name: str
    key: str
    value_name: str
    data: str
    remediation: Remediation = Remediation()
    kind = "registry"

    def check(self, ctx: Context) -> RuleResult:
        registry = ctx.facts.registry
        key = (
            _NOTHING
            if registry is None
            else registry.get((self.key.lower(), self.value_name.lower()))
        )
        return _recalled(self, key) or _remember(self, key, self._check(ctx))

    def _check(self, ctx: Context) -> RuleResult:
        required = f"{self.key}\\{self.value_name} = {self.data}"
        registry = ctx.facts.registry
        if registry is None:
            return _result(self, None, "no registry values reported", required)
        seen_value = registry.get((self.key.lower(), self.value_name.lower()))
        if seen_value is None:
            return _result(self, False, "not set", required)
        return _result(self, seen_value == self.data, seen_value, required)


@dataclass(frozen=True, slots=True)
class PortRule:
    name: str
    port: int
    protocol: int = 6  # IP protocol number: 6 TCP, 17 UDP
    open: bool = False
    remediation: Remediation = Remediation()
    kind = "port"

    def check(self, ctx: Context) -> RuleResult:
        ports = ctx.facts.ports
        key = _NOTHING if ports is None else ports.get((self.protocol, self.port))
        return _recalled(self, key) or _remember(self, key, self._check(ctx))

    def _check(self, ctx: Context) -> RuleResult:
        label = {6: "tcp", 17: "udp"}.get(self.protocol, str(self.protocol))
        required = f"{label}/{self.port} {'open' if self.open else 'closed'}"
        ports = ctx.facts.ports
        if ports is None:
            return _result(self, None, "no port filter reported", required)
        blocked = ports.get((self.protocol, self.port))
        if blocked is None:
            return _result(self, None, f"{label}/{self.port} not in the report", required)
        seen = f"{label}/{self.port} {'closed' if blocked else 'open'}"
        return _result(self, blocked != self.open, seen, required)


@dataclass(frozen=True, slots=True)
class CertificateRule:
    """A certificate issued by a given CA (a substring of its issuer DN), optionally with
    a subject matching, in any store."""

    name: str
    issuer: str
    subject: str = ""
    remediation: Remediation = Remediation()
    kind = "certificate"

    def _required(self) -> str:
        return f"issued by {self.issuer}" + (f", subject {self.subject}" if self.subject else "")

    def check(self, ctx: Context) -> RuleResult:
        said = _wording(self, self._required)
        certificates = ctx.facts.certificates
        if certificates is None:
            return said.result(None, "no certificates reported")
        now = ctx.now.isoformat()
        issuer, subject = self.issuer.lower(), self.subject.lower()
        for certificate in certificates:
            if issuer not in certificate.issuer.lower():
                continue
            if subject and subject not in certificate.subject.lower():
                continue
            if certificate.not_after and certificate.not_after < now[: len(certificate.not_after)]:
                continue  # expired
            return said.result(True, certificate.subject)
        return said.result(False, f"{len(certificates)} certificates, none matching")


Rule = (
    OsRule
    | SoftwareRule
    | PatchRule
    | ProtectionRule
    | FirewallRule
    | PatchManagementRule
    | ProcessRule
    | FileRule
    | RegistryRule
    | PortRule
    | CertificateRule
)


class PolicyError(ValueError):
    """The policy cannot be used as written; the message names the rule or field."""


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    platform: Platform
    rules: tuple[Rule, ...]
    require: Expression | None = None  # None: every rule

    def __post_init__(self) -> None:
        names = [rule.name for rule in self.rules]
        if not names:
            raise PolicyError(f"policy {self.name}: no rules")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise PolicyError(f"policy {self.name}: rule names used twice: {', '.join(duplicates)}")
        patch_rules = [rule for rule in self.rules if isinstance(rule, PatchRule)]
        if any(r.by_product for r in patch_rules) and any(not r.by_product for r in patch_rules):
            raise PolicyError(
                f"policy {self.name}: patch rules by product and by patch id cannot be in the"
                " same policy"
            )
        for rule in patch_rules:
            if bool(rule.products) == bool(rule.patches):
                raise PolicyError(
                    f"policy {self.name}, rule {rule.name}: give products or patches, not both"
                )
        if self.require is not None:
            unknown = sorted(names_in(self.require) - set(names))
            if unknown:
                raise PolicyError(
                    f"policy {self.name}: require names unknown rules: {', '.join(unknown)}"
                )

    @property
    def expression(self) -> Expression:
        return self.require or all_of([rule.name for rule in self.rules])


class Compliance(enum.Enum):
    COMPLIANT = "compliant"
    NON_COMPLIANT = "non-compliant"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class HostCheckerVerdict:
    policy: str
    compliance: Compliance
    trace: tuple[RuleResult, ...]
    remediation: tuple[tuple[str, Remediation], ...] = field(default=())  # (rule, what to do)


_COMPLIANCE = {
    Truth.TRUE: Compliance.COMPLIANT,
    Truth.FALSE: Compliance.NON_COMPLIANT,
    Truth.UNKNOWN: Compliance.UNKNOWN,
}


def _fix_for(rule: Rule, result: RuleResult) -> Remediation:
    """A failed rule's fix; for patch rules it names what is missing (the packages or
    patches the user must install), since the configured text cannot know them."""
    fix = rule.remediation
    if isinstance(rule, PatchRule | PatchManagementRule) and result.seen:
        instructions = f"{fix.instructions} ({result.seen})" if fix.instructions else result.seen
        return Remediation(instructions, fix.link, fix.action)
    return fix


def evaluate(
    policy: Policy, facts: PostureFacts, feed: PatchCatalog | None, now: datetime
) -> HostCheckerVerdict:
    """Judge `facts` by `policy`. An endpoint of another platform than the policy's is
    non-compliant (the policy is not for it), with a trace that says so."""
    if facts.platform is not policy.platform:
        seen = facts.platform.value if facts.platform else "unknown"
        result = RuleResult(
            "platform",
            "platform",
            Truth.FALSE if facts.platform else Truth.UNKNOWN,
            seen,
            policy.platform.value,
        )
        return HostCheckerVerdict(policy.name, _COMPLIANCE[result.outcome], (result,))
    ctx = Context(facts, feed, now, policy.platform)
    results = {rule.name: rule.check(ctx) for rule in policy.rules}
    # No require expression: every rule, their outcomes "and"-ed without building all_of.
    require = policy.require
    truth = _every(results.values()) if require is None else _truth(require, results)
    # The results are in the order of the rules (their names are unique).
    remediation = tuple(
        (rule.name, _fix_for(rule, result))
        for rule, result in zip(policy.rules, results.values(), strict=True)
        if result.outcome is _FALSE
        and (rule.remediation.instructions or rule.remediation.link or rule.remediation.action)
    )
    return HostCheckerVerdict(policy.name, _COMPLIANCE[truth], tuple(results.values()), remediation)


def _truth(expression: Expression, results: Mapping[str, RuleResult]) -> Truth:
    """evaluate_expression's Kleene logic over the rules' outcomes, without its callback
    and the Truth operators' tuple building: `and` is false if any operand is, else
    unknown if any is, else true; `or` the other way round."""
    kind = type(expression)
    if kind is Name:
        return results[expression.name].outcome  # type: ignore[union-attr]
    if kind is Not:
        value = _truth(expression.operand, results)  # type: ignore[union-attr]
        return _FALSE if value is _TRUE else _TRUE if value is _FALSE else _UNKNOWN
    if kind is And:
        decisive, otherwise = _FALSE, _TRUE
    elif kind is Or:
        decisive, otherwise = _TRUE, _FALSE
    else:  # a kind of expression this does not know: the expression module's own way
        return evaluate_expression(expression, lambda name: results[name].outcome)
    found = otherwise
    for operand in expression.operands:  # type: ignore[union-attr]
        value = _truth(operand, results)
        if value is decisive:
            return decisive
        if value is _UNKNOWN:
            found = _UNKNOWN
    return found


def _every(results: Iterable[RuleResult]) -> Truth:
    """`a and b and ...` over all the results, as _truth judges all_of(names)."""
    found = _TRUE
    for result in results:
        if result.outcome is _FALSE:
            return _FALSE
        if result.outcome is _UNKNOWN:
            found = _UNKNOWN
    return found


# Module names for the members used on every evaluation: reading an Enum class's member
# costs several times reading a global.
_TRUE, _FALSE, _UNKNOWN = Truth.TRUE, Truth.FALSE, Truth.UNKNOWN
_LINUX = Platform.LINUX


def evaluate_all(
    policies: Sequence[Policy], facts: PostureFacts, feed: PatchCatalog | None, now: datetime
) -> tuple[HostCheckerVerdict, ...]:
    return tuple(evaluate(policy, facts, feed, now) for policy in policies)
