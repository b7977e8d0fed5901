"""Run the C preprocessor over a P4 source file, the way p4c does, and return its text.

p4c hands every program to the system ``cpp`` with ``-C -undef -nostdinc -x
assembler-with-cpp``: comments are kept (annotations sometimes live near them), no compiler
macros are predefined, no system headers are searched, and the assembler language mode keeps
cpp from choking on P4's apostrophes. ``#include <core.p4>`` and ``<v1model.p4>`` are found in
our own include directory (``p4sim/p4include``), which is searched before
any user ``-I`` directory, as p4c does, so a stray ``core.p4`` next to a program cannot shadow
the architecture. The output keeps ``# line "file"`` markers,
which the lexer uses to report positions in the user's original files.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path

from p4sim.compiler.ast import Loc
from p4sim.compiler.errors import CompileError

log = logging.getLogger(__name__)

#: Our own core.p4 / v1model.p4.
P4INCLUDE_DIR = Path(__file__).resolve().parent.parent / "p4include"

#: What p4c-bm2-ss predefines, so ``#ifdef __TARGET_BMV2__`` style programs take the same path.
DEFAULT_DEFINES: tuple[str, ...] = (
    "__TARGET_BMV2__",
    "__p4c__=1",
    "__p4c_major__=1",
    "__p4c_minor__=2",
    "__p4c_patchlevel__=5",
    '__p4c_version__="1.2.5"',
)

CPP_FLAGS: tuple[str, ...] = ("-C", "-undef", "-nostdinc", "-x", "assembler-with-cpp")

_DIAG = re.compile(r"^(?P<file>[^:\n]+):(?P<line>\d+):(?:(?P<col>\d+):)?\s*(?:fatal )?error:\s*(?P<msg>.*)$")

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def find_cpp() -> str:
    """Locate the preprocessor executable (``$P4SIM_CPP`` overrides ``cpp`` on PATH)."""
    override = os.environ.get("P4SIM_CPP")
    if override:
        return override
    found = shutil.which("cpp")
    if not found:
        raise CompileError(
            "the C preprocessor 'cpp' was not found on PATH; install Debian's 'cpp' package "
            "(apt-get install cpp)"
        )
    return found


def _define_args(defines: Iterable[str] | Mapping[str, str | None]) -> list[str]:
    items: list[str]
    if isinstance(defines, Mapping):
        items = [name if value is None else f"{name}={value}" for name, value in defines.items()]
    else:
        items = list(defines)
    args: list[str] = []
    for item in items:
        name = item.split("=", 1)[0]
        if not _NAME.match(name):
            raise CompileError(f"invalid macro name in define '{item}'")
        args.append(f"-D{item}")
    return args


def cpp_command(
    path: str | os.PathLike[str],
    include_dirs: Iterable[str | os.PathLike[str]] = (),
    defines: Iterable[str] | Mapping[str, str | None] = (),
    builtin_defines: bool = True,
) -> list[str]:
    """The full preprocessor command line for ``path`` (useful for logs and tests)."""
    cmd = [find_cpp(), *CPP_FLAGS, f"-I{P4INCLUDE_DIR}"]
    cmd += [f"-I{d}" for d in include_dirs]
    if builtin_defines:
        cmd += _define_args(DEFAULT_DEFINES)
    cmd += _define_args(defines)
    cmd.append(str(path))
    return cmd


def _error_from_stderr(stderr: str, path: str) -> CompileError:
    # Keep the first real diagnostic as the message, with its location; the caret
    # drawings and "compilation terminated." lines add nothing for our users.
    for line in stderr.splitlines():
        m = _DIAG.match(line.strip())
        if m:
            loc = Loc(m.group("file"), int(m.group("line")), int(m.group("col") or 0))
            return CompileError(f"preprocessor: {m.group('msg')}", loc)
    text = stderr.strip() or "the C preprocessor failed"
    return CompileError(f"preprocessor failed on {path}: {text}")


def preprocess(
    path: str | os.PathLike[str],
    include_dirs: Iterable[str | os.PathLike[str]] = (),
    defines: Iterable[str] | Mapping[str, str | None] = (),
    builtin_defines: bool = True,
) -> str:
    """Preprocess the P4 file at ``path`` and return the text with line markers.

    ``include_dirs`` are extra ``-I`` directories; ``defines`` are ``NAME`` or ``NAME=VALUE``
    strings (or a mapping) passed as ``-D``. Any failure is a ``CompileError``.
    """
    p = Path(path)
    if not p.exists():
        raise CompileError(f"cannot open '{path}': no such file")
    if p.is_dir():
        raise CompileError(f"cannot open '{path}': is a directory")
    cmd = cpp_command(path, include_dirs, defines, builtin_defines)
    log.debug("preprocessing: %s", " ".join(cmd))
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, errors="replace", check=False, timeout=120
        )
    except FileNotFoundError as exc:
        raise CompileError(
            f"could not run the C preprocessor '{cmd[0]}'; install Debian's 'cpp' package"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise CompileError(f"the C preprocessor timed out on '{path}'") from exc
    if proc.returncode != 0:
        raise _error_from_stderr(proc.stderr, str(path))
    if proc.stderr.strip():
        log.info("preprocessor output on stderr for %s:\n%s", path, proc.stderr.rstrip())
    return proc.stdout
