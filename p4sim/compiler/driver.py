"""Compile a P4 program end to end: preprocess, parse, check, and produce P4Info and config."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from p4.config.v1 import p4info_pb2

from . import ast, devconfig
from .elaborate import elaborate
from .model import ProgramModel
from .parser import parse_file, parse_program


@dataclass
class CompiledProgram:
    program: ast.Program
    model: ProgramModel
    p4info: p4info_pb2.P4Info
    device_config: bytes


def _finish(program: ast.Program, source_name: str) -> CompiledProgram:
    from .p4info import build_p4info  # late: P4Info generation needs the whole model

    model = elaborate(program)
    return CompiledProgram(program, model, build_p4info(model), devconfig.dump(program, source_name))


def compile_file(path: str | Path, include_dirs: Sequence[str] = (), defines: Sequence[str] = ()) -> CompiledProgram:
    """Raises CompileError (``file:line:col: error: ...``) on any problem in the program."""
    program = parse_file(str(path), include_dirs=tuple(include_dirs), defines=tuple(defines))
    return _finish(program, Path(path).name)


def compile_text(text: str, filename: str = "<input>.p4") -> CompiledProgram:
    """Compile already-preprocessed text (tests; no #include)."""
    return _finish(parse_program(text, filename), filename)
