"""A source that does not compile: the developer's own run stops on it, a matrix cell
(keep_going) reports it as that file's one error result and judges the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.kbuild.artifacts import BuildArtifacts
from harness.progs.compile import CompileError
from harness.progs.runner import execute
from harness.progs.suite import COMPILE, suite_jobs

REPO = Path(__file__).resolve().parents[2]


def test_a_compile_error_is_that_files_result(x86_build: BuildArtifacts,
                                              tmp_path: Path) -> None:
    broken = tmp_path / "too_new.c"
    broken.write_text('#include <vmlinux.h>\nint f(struct no_such_type_here *p)\n'
                      '{ return p->x; }\n')
    good = REPO / "bpf_progs/implicit_args.c"
    with pytest.raises(CompileError):
        suite_jobs(x86_build, [broken, good])
    jobs = suite_jobs(x86_build, [broken, good], keep_going=True)
    first, rest = jobs[0], jobs[1:]
    assert first.id == f"too_new/{COMPILE}" and first.skip is not None
    assert first.skip.startswith("error: ") and "too_new.c" in first.skip
    assert rest and all(job.object_stem == "implicit_args" for job in rest)
    # Never sent to a target: its result is an ERROR carrying clang's first error line.
    (result,) = execute([first], x86_build.libbpf_so)
    assert (result.verdict, result.test_id) == ("error", f"too_new/{COMPILE}[x86_64]")
    assert "no_such_type_here" in result.reason or "too_new.c" in result.reason

