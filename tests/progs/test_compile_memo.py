"""The object cache's direct mode: a source whose inputs are unchanged skips clang's
preprocess, and an edit to any header it includes (or a touch) still goes through it."""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from harness.progs.compile import BpfToolchain, CompileError, compile_prog

PROGRAM = """\
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include "local.h"
const volatile int nonce = {nonce};
SEC("syscall") int prog(void *ctx) {{ return RET + nonce; }}
char _license[] SEC("license") = "GPL";
"""


def test_unchanged_inputs_skip_the_preprocess_and_an_edited_header_does_not(
        toolchain_73: BpfToolchain, tmp_path: Path) -> None:
    real = shutil.which(toolchain_73.clang)
    assert real is not None
    log = tmp_path / "clang.log"
    wrapper = tmp_path / "clang"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {real} "$@"\n')
    wrapper.chmod(0o755)
    tc = replace(toolchain_73, clang=str(wrapper))
    header = tmp_path / "local.h"
    header.write_text("#define RET 1\n")
    src = tmp_path / "memo_prog.c"  # a new nonce: no object of an earlier run matches
    src.write_text(PROGRAM.format(nonce=uuid.uuid4().int % 100000))

    def clang_runs() -> tuple[int, int]:
        """(preprocesses, compiles) since the last call."""
        lines = log.read_text().splitlines() if log.exists() else []
        log.write_text("")
        return (sum(" -E " in f" {ln} " for ln in lines),
                sum(" -c " in f" {ln} " for ln in lines))

    first = compile_prog(src, tc)
    clang_runs()  # the flags query and the version line ran too
    assert compile_prog(src, tc) == first
    assert clang_runs() == (0, 0)
    # new mtimes in the past: the memo never trusts an input newer than the preprocess
    # that read it (it may have changed while clang ran), whatever the machine's speed
    st = header.stat()  # touched, same bytes: preprocessed again, same object
    os.utime(header, ns=(st.st_atime_ns, st.st_mtime_ns - 20_000_000_000))
    assert compile_prog(src, tc) == first
    assert clang_runs() == (1, 0)
    header.write_text("#define RET 2\n")  # same size, new content: a new object
    os.utime(header, ns=(st.st_atime_ns, st.st_mtime_ns - 10_000_000_000))
    second = compile_prog(src, tc)
    assert second != first and second.read_bytes() != first.read_bytes()
    assert clang_runs() == (1, 1)
    assert compile_prog(src, tc) == second
    assert clang_runs() == (0, 0)
    header.unlink()  # an input gone: clang says so
    with pytest.raises(CompileError, match="local.h"):
        compile_prog(src, tc)
