"""Compile errors of the p4sim compiler, shared by the front end and the checker.

Every user-facing problem (bad file, preprocessor failure, syntax error, type error) is a
``CompileError``; its string form is the familiar ``file:line:col: error: message`` so that
editors and humans can jump to the spot.
"""

from __future__ import annotations

from p4sim.compiler.ast import Loc


class CompileError(Exception):
    """A problem in the user's program (or its environment) that stops compilation."""

    def __init__(self, message: str, loc: Loc | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.loc = loc

    def __str__(self) -> str:
        return format_error(self.message, self.loc)


def format_error(message: str, loc: Loc | None = None, severity: str = "error") -> str:
    """Render a diagnostic as ``file:line:col: severity: message`` (no location prefix when
    the location is unknown)."""
    if loc is None:
        return f"{severity}: {message}"
    return f"{loc.file}:{loc.line}:{loc.col}: {severity}: {message}"
