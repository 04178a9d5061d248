"""`harness btf copy|dump` as a user runs them: exit codes, one-line errors, atomic output."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness.btf.load import btf_bytes


def harness(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "harness", "btf", *args], capture_output=True)


def test_copy_elf_to_raw(tmp_path: Path, clang_obj: Path) -> None:
    out = tmp_path / "out.btf"
    r = harness("copy", "--lenient", str(clang_obj), str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == btf_bytes(clang_obj)


def test_copy_refuses_what_the_kernel_would_with_its_reason(tmp_path: Path,
                                                            clang_obj: Path) -> None:
    """clang's own BTF has DATASECs of size 0 until libbpf fills them in: the kernel's
    btf_datasec_check_meta refuses that, so strict copy does too, and says how to read it."""
    out = tmp_path / "out.btf"
    r = harness("copy", str(clang_obj), str(out))
    assert r.returncode == 2
    err = r.stderr.decode()
    assert "DATASEC: size == 0" in err and "--lenient" in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_copy_split_with_base(tmp_path: Path, clang_obj: Path) -> None:
    from harness.btf import Btf

    base_path = tmp_path / "base.btf"
    base_path.write_bytes(btf_bytes(clang_obj))
    base = Btf.from_bytes(base_path.read_bytes())
    split = Btf(base)
    split.add_ptr(1)
    split_path = tmp_path / "split.btf"
    split_path.write_bytes(split.to_bytes())
    out = tmp_path / "copy.btf"
    assert harness("copy", "--lenient", str(split_path), str(out), "--base",
                   str(base_path)).returncode == 0  # the base is clang's: lenient
    assert out.read_bytes() == split_path.read_bytes()
    # without its base the split blob is refused with one line
    r = harness("copy", str(split_path), str(out))
    assert r.returncode == 2
    assert b"base" in r.stderr


def test_corrupt_file_one_line_exit_2(tmp_path: Path, clang_obj: Path) -> None:
    raw = bytearray(btf_bytes(clang_obj))
    raw[24 + 7] = 0x7F  # first type's info, top byte (LE): kind 0x7f, unknown
    bad = tmp_path / "bad.btf"
    bad.write_bytes(bytes(raw))
    out = tmp_path / "out.btf"
    for cmd in (("copy", str(bad), str(out)), ("dump", str(bad))):
        r = harness(*cmd)
        assert r.returncode == 2
        lines = r.stderr.decode().strip().splitlines()
        assert len(lines) == 1, lines
        assert "type [1] at offset 0x18" in lines[0]
        # copy is strict and words it as the kernel does; dump reads leniently
        assert ("Invalid kind:127" if cmd[0] == "copy" else "unknown BTF kind") in lines[0]
    assert not out.exists()
    assert not list(tmp_path.glob(".out.btf.tmp*"))


def test_missing_and_truncated(tmp_path: Path, clang_obj: Path) -> None:
    r = harness("dump", str(tmp_path / "nope"))
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1
    trunc = tmp_path / "trunc.btf"
    trunc.write_bytes(btf_bytes(clang_obj)[:-5])
    r = harness("copy", str(trunc), str(tmp_path / "o"))
    assert r.returncode == 2 and b"truncated" in r.stderr
    elf_no_btf = tmp_path / "x.o"
    subprocess.run(["clang", "-target", "bpf", "-O2", "-c", "-x", "c", "-", "-o", str(elf_no_btf)],
                   input=b"int x;", check=True)
    r = harness("dump", str(elf_no_btf))
    assert r.returncode == 2 and b"no .BTF section" in r.stderr


def test_dump_writes_stdout(clang_obj: Path) -> None:
    r = harness("dump", str(clang_obj))
    assert r.returncode == 0
    assert r.stdout.startswith(b"[1] ")


def test_dump_notes_what_the_kernel_refuses_and_strict_refuses_it(tmp_path: Path) -> None:
    from harness.btf import Btf

    b = Btf()
    b.add_int("int", 4, 1)
    b.add_typedef("a", 3)
    b.add_typedef("b", 2)  # a -> b -> a: lenient reading shows it, the kernel refuses
    loop = tmp_path / "loop.btf"
    loop.write_bytes(b.to_bytes())
    r = harness("dump", str(loop))
    assert r.returncode == 0 and b"TYPEDEF 'a'" in r.stdout
    assert b"note:" in r.stderr and b"TYPEDEF: Loop detected" in r.stderr
    for cmd in (("dump", "--strict", str(loop)), ("diff", "--strict", str(loop), str(loop))):
        r = harness(*cmd)
        assert r.returncode == 2, cmd
        assert len(r.stderr.strip().splitlines()) == 1 and b"Loop detected" in r.stderr
