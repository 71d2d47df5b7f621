"""Fixtures building real labs (tools.labnet) for integration tests. Each lab has its own
namespace prefix (na-<6 hex>-) and a workdir under tmp_path, so tests can run in parallel,
and is always torn down. When a test fails, its labs' logs are added to the failure report.

    def test_x(lab_factory):
        lab = lab_factory(endpoints=2)
        lab.up(config=my_config)

    @pytest.mark.parametrize("lab", [{"appliance": True, "config": PATH}], indirect=True)
    def test_y(lab): ...
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tools.labnet import Lab
from tools.labnet.process import tail

LabFactory = Callable[..., Lab]
LEASE_TIMEOUT = 30.0

_labs_key = pytest.StashKey[list[Lab]]()


@pytest.fixture
def lab_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LabFactory]:
    """lab_factory(endpoints=3, **Lab kwargs) -> a Lab, not yet up, with a unique prefix and a
    workdir in tmp_path; every lab made is downed at teardown, even when the test failed."""
    labs = request.node.stash.setdefault(_labs_key, [])

    def make(endpoints: int = 3, **lab_kwargs: Any) -> Lab:
        # The default workdir (/run/netaccess-lab/<prefix>) is reachable by the unprivileged
        # netaccessd; pytest's tmp_path is not.
        lab = Lab(prefix=f"na-{secrets.token_hex(3)}-", endpoints=endpoints, **lab_kwargs)
        labs.append(lab)
        return lab

    yield make
    failures = []
    for lab in labs:
        try:
            lab.down()
        except Exception as exc:  # down every lab even if one fails
            failures.append(f"{lab.prefix}: {exc}")
    if failures:
        pytest.fail("lab teardown failed: " + "; ".join(failures))


@pytest.fixture
def lab(request: pytest.FixtureRequest, lab_factory: LabFactory) -> Lab:
    """A lab that is up, with leases on every endpoint.

    Defaults: 3 endpoints, no appliance. Override with indirect parametrisation:
    {"endpoints": N, "appliance": bool, "config": Path, "dhcp_clients": bool}.
    """
    params: dict[str, Any] = dict(getattr(request, "param", None) or {})
    built = lab_factory(endpoints=params.pop("endpoints", 3))
    params.setdefault("appliance", False)
    built.up(**params)
    if params.get("dhcp_clients", True):
        built.wait_for_leases(LEASE_TIMEOUT)
    return built


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        for lab in item.stash.get(_labs_key, []):
            report.sections.append((f"lab {lab.prefix} logs", _lab_logs(lab)))
    return report


def _lab_logs(lab: Lab) -> str:
    try:
        logs = sorted(lab.workdir.glob("*.log"))
    except OSError:
        return f"(no workdir {lab.workdir})"
    return "\n".join(f"--- {log.name}\n{tail(log, 30)}" for log in logs) or "(no logs)"
