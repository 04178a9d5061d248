"""`harness progs watch`'s loop on a real x86_64 guest: one boot, a verdict per save."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from harness import session
from harness.kbuild.build import BuildRequest
from harness.progs.watch import Round, watch
from harness.session import RunRequest
from tests.helpers.kernels import suite_kernel
from tests.progs.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.guest]

PROGRAM = REPO / "bpf_progs" / "implicit_args.c"


def test_each_save_is_judged_on_the_same_guest(request: pytest.FixtureRequest,
                                                tmp_path: Path) -> None:
    artifacts = suite_kernel("x86_64", request.config)
    source = tmp_path / PROGRAM.name
    source.write_text(PROGRAM.read_text())
    rounds: list[Round] = []
    boots: list[float | None] = []

    def report(result: Round) -> None:
        rounds.append(result)
        boots.append(target.boot_seconds)
        if len(rounds) == 1:  # the developer's save: now the expectation is wrong
            time.sleep(0.05)
            source.write_text(PROGRAM.read_text().replace("__retval(9)", "__retval(10)"))
        elif len(rounds) == 2:  # and then a syntax error
            text = source.read_text()
            source.write_text(text.replace("int implicit_plain(void *ctx)",
                                           "int implicit_plain(void *ctx"))

    run_request = RunRequest(builds=(BuildRequest(),), sources=(source,))
    with session.open_for(run_request, artifacts) as target:  # as `harness progs watch` does
        worker = threading.Thread(target=watch, args=(artifacts, target, [source], report),
                                  kwargs={"only": "implicit_plain", "rounds": 3,
                                          "poll": 0.05}, daemon=True)
        worker.start()
        worker.join(timeout=300)
        assert not worker.is_alive(), "watch did not see the saves"
        guest_pids = {pid for pid, _name in target.processes()}
    first, second, third = rounds
    assert first.error is None and {r.verdict for r in first.results} == {"pass"}
    assert second.error is None and {r.verdict for r in second.results} == {"fail"}
    assert all("retval" in r.reason.lower() for r in second.results), second.results
    assert third.error is not None and third.error.startswith("compile: ")
    assert len(set(boots)) == 1  # never rebooted: one guest served every round
    assert guest_pids and not any(os.path.exists(f"/proc/{p}") for p in guest_pids)
