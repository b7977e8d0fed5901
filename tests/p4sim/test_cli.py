"""p4sim-compile and p4sim command lines: outputs, errors as one line, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from google.protobuf import text_format
from p4.config.v1 import p4info_pb2

EXAMPLE = Path(__file__).resolve().parents[2] / "p4sim" / "examples" / "l3_forward.p4"
BIN = Path(sys.executable).parent


def run(tool: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / tool), *args], capture_output=True, text=True, timeout=60)


def test_compile_writes_config_and_p4info_in_each_format(tmp_path: Path) -> None:
    out = tmp_path / "out" / "prog.p4sim.json"
    txt, binf, js = tmp_path / "p.txtpb", tmp_path / "p.bin", tmp_path / "p.json"
    r = run("p4sim-compile", str(EXAMPLE), "-o", str(out), "--p4runtime-files", f"{txt},{binf},{js}")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes().startswith(b'{"format":"p4sim-program"')
    from_text = text_format.Parse(txt.read_text(), p4info_pb2.P4Info())
    from_bin = p4info_pb2.P4Info.FromString(binf.read_bytes())
    assert from_text == from_bin
    assert {t.preamble.name for t in from_text.tables} == {"RouterIngress.ipv4_lpm"}
    assert '"tables"' in js.read_text()


def test_compile_error_is_one_located_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.p4"
    text = EXAMPLE.read_text().splitlines()
    at = next(i for i, line in enumerate(text) if "port_packets.count" in line)
    text.insert(at, "        undeclared_thing = 1;")
    bad.write_text("\n".join(text) + "\n")
    r = run("p4sim-compile", str(bad), "-o", str(tmp_path / "o.json"))
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"{bad}:{at + 1}:9: error:")
    assert "undeclared_thing" in lines[0]
    assert "error:" in lines[0]
    assert "Traceback" not in r.stderr


def test_compile_missing_file_and_bad_flag() -> None:
    r = run("p4sim-compile", "/nonexistent/prog.p4")
    assert r.returncode == 1 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1
    r = run("p4sim-compile", "--arch", "psa", str(EXAMPLE))
    assert r.returncode == 1 and "psa" in r.stderr
    r = run("p4sim-compile", "--no-such-flag", str(EXAMPLE))
    assert r.returncode == 2 and r.stderr.count("\n") == 1


def test_switch_bad_arguments_are_one_line() -> None:
    r = run("p4sim", "-i", "veth1", "--no-p4")
    assert r.returncode == 2 and "PORT@IFACE" in r.stderr and r.stderr.count("\n") == 1
    r = run("p4sim")
    assert r.returncode == 2 and "--no-p4" in r.stderr
    r = run("p4sim", "--device-id", "x", "--no-p4")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    r = run("p4sim", "--no-p4", "-i", "1@p4sim-no-such-if0", "--grpc-server-addr", "127.0.0.1:0")
    assert r.returncode == 1 and "p4sim-no-such-if0" in r.stderr and "Traceback" not in r.stderr


def test_switch_with_a_device_config_it_cannot_load_says_so_once(tmp_path: Path) -> None:
    """Not JSON, JSON of another compiler (BMv2's), a missing file: one line naming the file,
    one "error:", no errno wording or traceback."""
    not_json = tmp_path / "x.json"
    not_json.write_text("not json\n")
    bmv2_like = tmp_path / "splice.json"
    bmv2_like.write_text('{"header_types": [], "pipelines": []}\n')
    cases = [(not_json, "device config is not p4sim JSON"),
             (bmv2_like, "was it built by p4c-bm2-ss? use p4sim-compile"),
             (tmp_path / "missing.json", "no such file or directory")]
    for path, what in cases:
        r = run("p4sim", str(path), "--grpc-server-addr", "127.0.0.1:0")
        assert r.returncode == 1, r.stderr
        (line,) = r.stderr.strip().splitlines()
        assert line.startswith(f"p4sim: error: {path}: ") and what in line, line
        assert line.count("error:") == 1 and "Errno" not in line
