"""The p4sim device config (``prog.p4sim.json``): the checked program's syntax tree as JSON.

The switch re-elaborates it on SetForwardingPipelineConfig, so the config needs no source
files and no preprocessor on the switch side, like BMv2's JSON.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from . import ast
from .errors import CompileError

FORMAT = "p4sim-program"
VERSION = 1

_NODE_TYPES: dict[str, type] = {
    name: obj for name, obj in vars(ast).items()
    if isinstance(obj, type) and dataclasses.is_dataclass(obj)
}


def _encode(obj: Any) -> Any:
    if isinstance(obj, ast.Loc):
        return [obj.file, obj.line, obj.col]
    if dataclasses.is_dataclass(obj):
        out: dict[str, Any] = {"_": type(obj).__name__}
        for f in dataclasses.fields(obj):
            out[f.name] = _encode(getattr(obj, f.name))
        return out
    if isinstance(obj, list):
        return [_encode(x) for x in obj]
    if isinstance(obj, tuple):
        return {"_tuple": [_encode(x) for x in obj]}
    if isinstance(obj, dict):
        return {"_dict": [[k, _encode(v)] for k, v in obj.items()]}
    return obj


def _decode(obj: Any) -> Any:
    if isinstance(obj, list):
        return [_decode(x) for x in obj]
    if isinstance(obj, dict):
        if "_tuple" in obj:
            return tuple(_decode(x) for x in obj["_tuple"])
        if "_dict" in obj:
            return {k: _decode(v) for k, v in obj["_dict"]}
        cls = _NODE_TYPES.get(obj.get("_", ""))
        if cls is None:
            raise ValueError(f"unknown node type {obj.get('_')!r}")
        kwargs = {}
        for f in dataclasses.fields(cls):
            if f.name not in obj:
                continue
            v = obj[f.name]
            if f.name == "loc":
                kwargs[f.name] = ast.Loc(*v)
            else:
                kwargs[f.name] = _decode(v)
        return cls(**kwargs)
    return obj


def dump(program: ast.Program, source_name: str) -> bytes:
    doc = {"format": FORMAT, "version": VERSION, "source": source_name, "program": _encode(program)}
    return json.dumps(doc, separators=(",", ":")).encode()


def load(data: bytes) -> ast.Program:
    """Parse a device config; a malformed one raises CompileError with what is wrong."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CompileError(f"device config is not p4sim JSON: {exc}") from None
    except RecursionError:
        raise CompileError("device config is not p4sim JSON: nested too deeply") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CompileError("device config is not a p4sim program (was it built by p4c-bm2-ss? use p4sim-compile)")
    if doc.get("version") != VERSION:
        raise CompileError(f"device config version {doc.get('version')} is not supported (want {VERSION})")
    try:
        prog = _decode(doc["program"])
    except (ValueError, TypeError, KeyError) as exc:
        raise CompileError(f"device config is damaged: {exc}") from None
    if not isinstance(prog, ast.Program):
        raise CompileError("device config holds no program")
    return prog
