"""The end-to-end suite's closing table (conftest.pytest_terminal_summary): the figures its tests
took, one line each, under a heading naming the sizes and the switch; nothing when none."""

from __future__ import annotations

import pytest

from tests.e2e import conftest, support


class _Reporter:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def section(self, title: str) -> None:
        self.lines.append(f"== {title}")

    def write_line(self, line: str) -> None:
        self.lines.append(line)


def test_the_summary_lists_each_figure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(support, "FIGURES", [])
    rep = _Reporter()
    conftest.pytest_terminal_summary(rep)
    assert rep.lines == []
    support.figure("inspect download", "300 KB, spliced, Mbit/s", 123.456)
    support.figure("concurrent connections", "spliced / kept", "70 / 5 of 75")
    monkeypatch.setenv("TARGET", "bmv2")
    conftest.pytest_terminal_summary(rep)
    assert rep.lines[0].startswith("== end-to-end figures (") and rep.lines[0].endswith(", bmv2)")
    assert rep.lines[1].split() == ["inspect", "download", "300", "KB,", "spliced,", "Mbit/s:", "123.5"]
    assert rep.lines[2].endswith("spliced / kept: 70 / 5 of 75")
