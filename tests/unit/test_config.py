"""Loading the appliance config: defaults, typed values, and errors that name file, key and line."""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netaccess.config import (
    DEFAULT_CONFIG_TEXT,
    ApplianceConfig,
    ConfigError,
    ConfigIssue,
    DaemonConfig,
    DetectionConfig,
    EnforcementConfig,
    InterfacesConfig,
    LogLevel,
    PortalConfig,
    default_config,
    load_config_file,
    load_config_text,
)
from netaccess.policy.roles import Realm

SOURCE = "appliance.toml"


def problems(text: str) -> list[str]:
    """The lines of str(ConfigError) for `text`; fails if the text loads."""
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, SOURCE)
    return str(caught.value).splitlines()


def the_problem(text: str) -> str:
    [only] = problems(text)
    return only


# -- defaults ----------------------------------------------------------------------------------


def test_embedded_default_loads_as_the_documented_defaults() -> None:
    expected = ApplianceConfig(
        daemon=DaemonConfig(
            state_dir=Path("/var/lib/netaccess"),
            control_socket=Path("/run/netaccess/control.sock"),
            admin_group="netaccess-admin",
            log_level=LogLevel.INFO,
            shutdown_grace=5.0,
            watchdog=True,
        ),
        interfaces=InterfacesConfig(access=("acc0",), upstream=("up0",)),
        detection=DetectionConfig(
            enabled=True,
            malformed_log_interval=10.0,
            receive_buffer=4 * 1024 * 1024,
            max_endpoints=100_000,
        ),
        source="<embedded default>",
        enforcement=EnforcementConfig(),
        roles=default_config().roles,
        realms=(Realm("staff", "full", "Staff"),),
    )
    assert default_config() == expected
    assert default_config().daemon.user == "netaccess"


def test_embedded_default_declares_the_builtin_roles_and_a_full_access_role() -> None:
    roles = {role.name: role for role in default_config().roles}
    assert [role.name for role in default_config().roles][:2] == ["quarantine", "remediation"]
    assert roles["quarantine"].captive and roles["remediation"].captive
    full = roles["full"]
    assert not full.captive
    assert {str(d.network) for d in full.allow} == {"0.0.0.0/0", "::/0"}


def test_embedded_default_spells_out_every_key_of_every_section() -> None:
    document = tomllib.loads(DEFAULT_CONFIG_TEXT)
    sections = {
        "daemon": DaemonConfig,
        "interfaces": InterfacesConfig,
        "detection": DetectionConfig,
        "enforcement": EnforcementConfig,
        "portal": PortalConfig,
    }
    assert {name: set(document[name]) for name in sections} == {
        name: {field.name for field in dataclasses.fields(cls)} for name, cls in sections.items()
    }


def test_empty_text_takes_every_default() -> None:
    config = load_config_text("", SOURCE)
    assert (config.daemon, config.interfaces, config.detection) == (
        DaemonConfig(),
        InterfacesConfig(),
        DetectionConfig(),
    )


def test_missing_keys_in_a_present_section_take_their_defaults() -> None:
    config = load_config_text('[daemon]\nlog_level = "debug"\n', SOURCE)
    assert config.daemon == DaemonConfig(log_level=LogLevel.DEBUG)


def test_config_remembers_its_source() -> None:
    assert load_config_text("", SOURCE).source == SOURCE


def test_config_values_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        default_config().daemon.watchdog = False  # type: ignore[misc]


# -- values ------------------------------------------------------------------------------------


FULL = """\
[daemon]
state_dir = "/srv/nac"
control_socket = "/run/nac.sock"
admin_group = "wheel"
log_level = "warning"
shutdown_grace = 30
watchdog = false

[interfaces]
access = ["eth1", "eth2.100"]
upstream = []

[detection]
enabled = false
malformed_log_interval = 0.5
receive_buffer = 65536
"""


def test_every_key_is_read_into_its_typed_field() -> None:
    config = load_config_text(FULL, SOURCE)
    assert config == ApplianceConfig(
        daemon=DaemonConfig(
            Path("/srv/nac"), Path("/run/nac.sock"), "wheel", LogLevel.WARNING, 30.0, False
        ),
        interfaces=InterfacesConfig(access=("eth1", "eth2.100"), upstream=()),
        detection=DetectionConfig(enabled=False, malformed_log_interval=0.5, receive_buffer=65536),
        source=SOURCE,
        roles=load_config_text("", SOURCE).roles,
    )


def test_integer_seconds_are_read_as_a_float() -> None:
    assert type(load_config_text(FULL, SOURCE).daemon.shutdown_grace) is float


def test_inline_table_works_like_a_section() -> None:
    config = load_config_text('daemon = { log_level = "error" }\n', SOURCE)
    assert config.daemon.log_level is LogLevel.ERROR


def test_interface_name_of_exactly_15_bytes_is_accepted() -> None:
    config = load_config_text('[interfaces]\naccess = ["abcdefghijklmno"]\n', SOURCE)
    assert config.interfaces.access == ("abcdefghijklmno",)


# -- error messages ----------------------------------------------------------------------------


def test_wrong_type_for_interface_list_gives_the_documented_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = ["# appliance config", ""] + [f"# note {n}" for n in range(8)]
    lines += ["[interfaces]", 'access = "eth1"']
    (tmp_path / SOURCE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as caught:
        load_config_file(SOURCE)
    assert str(caught.value) == (
        'appliance.toml:12: interfaces.access: expected a list of interface names, got "eth1"'
    )


def test_unknown_key_is_reported_with_its_line_and_the_known_keys() -> None:
    assert the_problem('[daemon]\nlog_level = "info"\nlog_levle = "debug"\n') == (
        "appliance.toml:3: daemon.log_levle: unknown key (known: admin_group, control_socket, "
        "log_level, shutdown_grace, state_dir, user, watchdog)"
    )


def test_unknown_table_is_reported_at_its_header() -> None:
    assert the_problem("[daemon]\n\n[detecton]\nenabled = true\n") == (
        "appliance.toml:3: detecton: unknown table (known: daemon, detection, enforcement, "
        "interfaces, patch_feed, policies, portal, posture, radius, realms, roles)"
    )


def test_unknown_array_of_tables_is_reported_at_its_first_header() -> None:
    assert the_problem('\n[[widgets]]\nname = "a"\n') == (
        "appliance.toml:2: widgets: unknown table (known: daemon, detection, enforcement, "
        "interfaces, patch_feed, policies, portal, posture, radius, realms, roles)"
    )


def test_unknown_quoted_key_is_shown_quoted() -> None:
    assert the_problem('[daemon]\n"log level" = 1\n').startswith(
        'appliance.toml:2: daemon."log level": unknown key'
    )


def test_wrong_type_names_the_expected_type_and_shows_the_value() -> None:
    assert the_problem('[daemon]\nwatchdog = "yes"\n') == (
        'appliance.toml:2: daemon.watchdog: expected true or false, got "yes"'
    )


def test_section_that_is_not_a_table_is_reported() -> None:
    assert the_problem("daemon = 5\n") == "appliance.toml:1: daemon: expected a table, got 5"


def test_number_above_its_maximum_is_reported_with_the_range() -> None:
    assert the_problem("[daemon]\nshutdown_grace = 301\n") == (
        "appliance.toml:2: daemon.shutdown_grace: "
        "expected a number of seconds > 0 and <= 300, got 301"
    )


def test_zero_is_below_an_exclusive_minimum() -> None:
    assert the_problem("[detection]\nmalformed_log_interval = 0.0\n") == (
        "appliance.toml:2: detection.malformed_log_interval: "
        "expected a number of seconds > 0, got 0.0"
    )


def test_nan_is_not_a_number_of_seconds() -> None:
    assert the_problem("[daemon]\nshutdown_grace = nan\n").endswith("got nan")


def test_boolean_is_not_a_number() -> None:
    assert the_problem("[daemon]\nshutdown_grace = true\n").endswith("got true")


def test_integer_outside_its_range_is_reported() -> None:
    assert the_problem("[detection]\nreceive_buffer = 1024\n") == (
        "appliance.toml:2: detection.receive_buffer: expected an integer number of bytes "
        "between 65536 and 268435456, got 1024"
    )


def test_float_is_not_an_integer() -> None:
    assert the_problem("[detection]\nreceive_buffer = 65536.0\n").endswith("got 65536.0")


def test_relative_path_is_rejected() -> None:
    assert the_problem('[daemon]\nstate_dir = "var/lib/netaccess"\n') == (
        'appliance.toml:2: daemon.state_dir: expected an absolute path, got "var/lib/netaccess"'
    )


def test_unknown_log_level_lists_the_choices() -> None:
    assert the_problem('[daemon]\nlog_level = "verbose"\n') == (
        "appliance.toml:2: daemon.log_level: expected one of "
        '"debug", "info", "warning", "error", got "verbose"'
    )


def test_group_name_with_a_space_is_rejected() -> None:
    assert the_problem('[daemon]\nadmin_group = "net admins"\n').endswith('got "net admins"')


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "must be 1 to 15 bytes long"),
        ("abcdefghijklmnop", "must be 1 to 15 bytes long"),
        ("\u00e9" * 8, "must be 1 to 15 bytes long"),
        ("a/b", 'must not contain "/"'),
        ("a:b", 'must not contain ":"'),
        ("a\\u0000b", "must not contain NUL"),
        ("a b", "must not contain whitespace"),
        ("a\\tb", "must not contain whitespace"),
        (".", 'must not be "." or ".."'),
        ("..", 'must not be "." or ".."'),
    ],
)
def test_bad_interface_name_is_reported_with_the_reason(name: str, reason: str) -> None:
    problem = the_problem(f'[interfaces]\naccess = ["{name}"]\n')
    assert problem.startswith("appliance.toml:2: interfaces.access[0]: invalid interface name ")
    assert problem.endswith(f": {reason}")


def test_bad_interface_name_in_a_multiline_list_is_reported_at_its_own_line() -> None:
    text = '[interfaces]\naccess = [\n  "eth0",\n  "eth/1",\n]\n'
    assert the_problem(text).startswith("appliance.toml:4: interfaces.access[1]: ")


def test_duplicate_interface_is_reported() -> None:
    assert the_problem('[interfaces]\naccess = ["eth0", "eth0"]\n') == (
        'appliance.toml:2: interfaces.access[1]: interface "eth0" is listed twice'
    )


def test_interface_in_both_access_and_upstream_is_reported() -> None:
    assert the_problem('[interfaces]\naccess = ["eth0"]\nupstream = ["eth1", "eth0"]\n') == (
        'appliance.toml:3: interfaces.upstream[1]: interface "eth0" is in both access and upstream'
    )


def test_empty_access_list_is_rejected() -> None:
    assert the_problem("[interfaces]\naccess = []\n") == (
        "appliance.toml:2: interfaces.access: expected at least one interface name, got []"
    )


def test_empty_upstream_list_is_accepted() -> None:
    assert load_config_text("[interfaces]\nupstream = []\n", SOURCE).interfaces.upstream == ()


def test_toml_syntax_error_gives_its_line_without_the_position_suffix() -> None:
    assert the_problem('[daemon]\nlog_level = "info"\nwatchdog true\n') == (
        "appliance.toml:3: TOML syntax error: Expected '=' after a key in a key/value pair"
    )


def test_toml_syntax_error_at_end_of_document_gives_the_last_line() -> None:
    assert the_problem("[interfaces]\naccess = [\n").startswith(
        "appliance.toml:2: TOML syntax error: "
    )


def test_every_issue_in_a_file_is_reported_together_in_line_order() -> None:
    text = '[daemon]\nwatchdog = 1\nstate_dir = "x"\n[interfaces]\naccess = "eth1"\n[extra]\n'
    assert [line.split(":")[1] for line in problems(text)] == ["2", "3", "5", "6"]


def test_long_value_is_shortened_and_kept_on_one_line() -> None:
    problem = the_problem(f'[daemon]\nadmin_group = """{"x " * 500}\n"""\n')
    assert len(problem) < 200


def test_issue_without_a_line_or_key_shows_only_the_file() -> None:
    assert str(ConfigIssue("a.toml", None, "", "cannot read config file")) == (
        "a.toml: cannot read config file"
    )


# -- files -------------------------------------------------------------------------------------


def test_config_file_is_loaded(tmp_path: Path) -> None:
    path = tmp_path / SOURCE
    path.write_text(FULL, encoding="utf-8")
    assert load_config_file(path) == load_config_text(FULL, str(path))


def test_missing_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as caught:
        load_config_file(path)
    assert str(caught.value) == f"{path}: cannot read config file: No such file or directory"


def test_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_config_file(tmp_path)


def test_path_with_nul_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        load_config_file("bad\0name.toml")


def test_file_that_is_not_utf8_is_reported_with_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / SOURCE
    path.write_bytes(b'[daemon]\nadmin_group = "\xffx"\n')
    with pytest.raises(ConfigError) as caught:
        load_config_file(path)
    assert str(caught.value) == f"{path}:2: not valid UTF-8: byte 0xff at column 16"


def test_oversized_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / SOURCE
    path.write_bytes(b"#" * (5 * 1024 * 1024))
    with pytest.raises(ConfigError, match="larger than 4 MiB"):
        load_config_file(path)


# -- robustness --------------------------------------------------------------------------------

FRAGMENTS = [
    "[daemon]", "[interfaces]", "[detection]", "[[interfaces]]", "[daemon.x]", "\n", " ", "=",
    "log_level", "access", "upstream", "shutdown_grace", "receive_buffer", "state_dir", "watchdog",
    '"info"', '"eth0"', '"/x"', "1", "-0", "1e400", "nan", "true", "[", "]", "{", "}", ",", ".",
    '"""', "'''", "#", "1979-05-27", "'", '"', "\\", "\xff", "\x00",
]  # fmt: skip


@given(st.text())
def test_arbitrary_text_gives_a_config_or_a_config_error_of_one_line_per_issue(
    text: str,
) -> None:
    try:
        load_config_text(text, SOURCE)
    except ConfigError as error:
        assert len(str(error).splitlines()) == len(error.issues) >= 1


@given(st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join))
def test_toml_shaped_garbage_gives_a_config_or_a_config_error(text: str) -> None:
    try:
        load_config_text(text, SOURCE)
    except ConfigError as error:
        assert error.issues


KNOWN_KEYS = [
    ("daemon", key) for key in ("state_dir", "control_socket", "admin_group", "log_level")
] + [
    ("daemon", "shutdown_grace"),
    ("daemon", "watchdog"),
    ("interfaces", "access"),
    ("interfaces", "upstream"),
    ("detection", "enabled"),
    ("detection", "malformed_log_interval"),
    ("detection", "receive_buffer"),
]
toml_literals = st.recursive(
    st.one_of(
        st.integers().map(str),
        st.floats().map(lambda f: {"inf": "inf", "-inf": "-inf"}.get(repr(f), repr(f))),
        st.booleans().map(lambda b: "true" if b else "false"),
        st.text(st.characters(exclude_categories=("Cc", "Cs"), exclude_characters='"\\')).map(
            lambda s: f'"{s}"'
        ),
        st.sampled_from(['"/var/lib/x"', '"eth0"', '"debug"', '["eth0", "eth1"]', "[]"]),
        st.just("1979-05-27T07:32:00Z"),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(lambda items: "[" + ", ".join(items) + "]"),
        st.lists(inner, max_size=2).map(
            lambda items: "{" + ", ".join(f"k{n} = {v}" for n, v in enumerate(items)) + "}"
        ),
    ),
    max_leaves=5,
)


@given(st.dictionaries(st.sampled_from(KNOWN_KEYS), toml_literals))
def test_any_value_for_a_known_key_gives_a_config_or_a_config_error(
    values: dict[tuple[str, str], str],
) -> None:
    text = "".join(f"{section}.{key} = {value}\n" for (section, key), value in values.items())
    try:
        load_config_text(text, SOURCE)
    except ConfigError as error:
        assert all(issue.line is not None for issue in error.issues)


def test_portal_hostname_must_be_a_dns_name() -> None:
    with pytest.raises(ConfigError, match=r"portal\.hostname"):
        load_config_text('[portal]\nhostname = "Portal_1.example"\n', SOURCE)


def test_portal_limits_take_their_bounds() -> None:
    with pytest.raises(ConfigError, match=r"portal\.max_header_bytes"):
        load_config_text("[portal]\nmax_header_bytes = 10\n", SOURCE)
    config = load_config_text('[portal]\nhostname = "nac.corp.example"\nidle_timeout = 5\n', SOURCE)
    assert (config.portal.hostname, config.portal.idle_timeout) == ("nac.corp.example", 5.0)


def test_a_realm_must_map_to_a_declared_role() -> None:
    with pytest.raises(ConfigError, match=r"realms\[0\]\.role: unknown role \"gold\""):
        load_config_text('[[realms]]\nname = "guests"\nrole = "gold"\n', SOURCE)


def test_a_realm_declared_twice_is_an_error() -> None:
    text = '[[realms]]\nname = "a"\nrole = "full"\n[[realms]]\nname = "a"\nrole = "full"\n'
    with pytest.raises(ConfigError, match="declared twice"):
        load_config_text(text, SOURCE)


def test_posture_sign_in_needs_a_declared_realm() -> None:
    assert the_problem('[posture]\nauthentication = "plain"\nrealm = "guests"\n') == (
        'appliance.toml:3: posture.realm: unknown realm "guests"'
    )


def test_posture_client_certificates_need_their_ca() -> None:
    assert the_problem('[posture]\nclient_certificates = "required"\n') == (
        "appliance.toml:1: posture.client_ca: client certificates need the CA that signs "
        "them: give client_ca"
    )


def test_posture_authentication_is_one_of_its_choices() -> None:
    assert the_problem('[posture]\nauthentication = "kerberos"\n') == (
        'appliance.toml:2: posture.authentication: expected one of "none", "plain", got "kerberos"'
    )
