"""p4sim.protoregen: p4runtime's modules regenerated for the compiled protobuf runtime."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2
from p4.v1 import p4runtime_pb2

from p4sim import protoregen

OLD_STYLE = '''
DESCRIPTOR = _descriptor.FileDescriptor(
  name='p4/v1/x.proto',
  package='p4.v1',
  serialized_pb=b'\\n\\rp4/v1/x.proto\\x12\\x05p4.v1'
)
'''


def test_descriptor_blob_reads_old_and_new_style_modules() -> None:
    old = descriptor_pb2.FileDescriptorProto.FromString(protoregen.descriptor_blob(OLD_STYLE))
    assert (old.name, old.package) == ("p4/v1/x.proto", "p4.v1")
    installed = Path(p4runtime_pb2.__file__).read_text()
    new = descriptor_pb2.FileDescriptorProto.FromString(protoregen.descriptor_blob(installed))
    assert new.name == "p4/v1/p4runtime.proto"
    assert "WriteRequest" in [m.name for m in new.message_type]
    with pytest.raises(protoregen.RegenError, match="no serialized file descriptor"):
        protoregen.descriptor_blob("x = 1\n")


def test_installed_modules_import_under_this_runtime() -> None:
    ok, why = protoregen.modules_import()
    assert ok, why
    assert protoregen.main(["--check"]) == 0


@pytest.mark.skipif(not protoregen.grpc_tools_available(), reason="needs grpcio-tools (the protogen extra)")
def test_regenerate_rewrites_every_module_with_the_same_descriptors(tmp_path: Path) -> None:
    installed = protoregen.package_root()
    for name in protoregen.PROTO_MODULES:
        dst = tmp_path / f"{name}_pb2.py"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(installed / f"{name}_pb2.py", dst)
    written = protoregen.regenerate(tmp_path)
    assert sorted(p.name for p in written) == sorted(
        f"{Path(n).name}{suffix}" for n in protoregen.PROTO_MODULES for suffix in ("_pb2.py", "_pb2_grpc.py"))
    for name in protoregen.PROTO_MODULES:
        before = protoregen.descriptor_blob((installed / f"{name}_pb2.py").read_text())
        after = protoregen.descriptor_blob((tmp_path / f"{name}_pb2.py").read_text())
        assert descriptor_pb2.FileDescriptorProto.FromString(after) == \
            descriptor_pb2.FileDescriptorProto.FromString(before)
    assert "class P4RuntimeStub" in (tmp_path / "p4/v1/p4runtime_pb2_grpc.py").read_text()


def test_regenerate_names_a_missing_module(tmp_path: Path) -> None:
    if not protoregen.grpc_tools_available():
        pytest.skip("needs grpcio-tools (the protogen extra)")
    with pytest.raises(protoregen.RegenError, match="p4types_pb2.py is missing"):
        protoregen.regenerate(tmp_path)
