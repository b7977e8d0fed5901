"""The switch the controller's integration tests run against, chosen by ``P4SPLICE_SWITCH``
(inprocess, the default; p4sim; bmv2 -- see tests/controller/switches.py), and the ``integration``
marker that ``make test-integration`` selects."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from p4splice.lab import netdev

from tests.controller import switches
from tests.controller.switches import Pipeline


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "integration: the controller daemon against a switch over P4Runtime (P4SPLICE_SWITCH picks it)")
    config.addinivalue_line(
        "markers", "external_switch: needs the switch as a process of its own (P4SPLICE_SWITCH=p4sim or bmv2)")
    # A switch asked for by name and not runnable here is an error of the run, not a skip: say what
    # is missing in one line before any test starts.
    try:
        kind = switches.selected_kind()
        switches.check_environment(kind)
    except (ValueError, RuntimeError) as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("external_switch") and switches.selected_kind() == "inprocess":
        pytest.skip("needs a switch process (make test-integration)")


def pytest_report_header(config: pytest.Config) -> str:
    return f"controller integration switch: {switches.selected_kind()}"


@pytest.fixture(scope="session")
def switch_kind() -> str:
    kind = switches.selected_kind()
    if kind != "inprocess":
        netdev.cleanup_stale(switches.PREFIX)  # veths a killed run left behind
    return kind


@pytest.fixture(scope="session")
def splice_pipeline(switch_kind: str, tmp_path_factory: pytest.TempPathFactory) -> Pipeline:
    """p4src/splice.p4 built once per run for the selected switch."""
    return switches.build_pipeline(switch_kind, tmp_path_factory.mktemp(f"build-{switch_kind}"))


@pytest.fixture
def splice_switch(splice_pipeline: Pipeline, tmp_path: Path) -> Iterator[switches.Switch]:
    """A started switch with ports 1 (client), 2 (server), 3 (proxy host), torn down after."""
    from tests.controller.test_orchestrator_support import C_PORT, CPU, DEVICE, P_PORT, S_PORT

    sw = switches.open_switch(splice_pipeline, (C_PORT, S_PORT, P_PORT), tmp_path, DEVICE, CPU)
    try:
        yield sw
    finally:
        sw.close()


@pytest.fixture
def lab(splice_switch: switches.Switch, tmp_path: Path):  # noqa: ANN201 - Lab, imported late like the ports
    """The orchestrator tests' harness around ``splice_switch``."""
    from tests.controller.test_orchestrator_support import Lab

    return Lab(splice_switch, tmp_path)
