"""HID pieces that need no guest: uhid layouts vs the C header, scenarios, the judge,
and which programs each struct_ops map of bpf_progs/hid.c uses (libbpf's view).
The scenarios themselves run in tests/progs/test_suite_guest.py."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.progs import agent, hidtool
from harness.progs.expectations import object_specs
from harness.progs.judge import ERROR, FAIL, PASS, judge
from harness.progs.runner import plan
from tests.progs.conftest import REPO

_LAYOUT_C = r"""
#include <stdio.h>
#include <stddef.h>
#include <linux/uhid.h>
int main(void)
{
	printf("%zu %zu %zu %zu %zu %zu\n", sizeof(struct uhid_event),
		offsetof(struct uhid_event, u.create2.rd_size),
		offsetof(struct uhid_event, u.create2.rd_data),
		offsetof(struct uhid_event, u.input2.data),
		offsetof(struct uhid_event, u.get_report_reply.data),
		(size_t)UHID_INPUT2);
	return 0;
}
"""


def test_uhid_layout_matches_the_c_header(tmp_path: Path) -> None:
    cc = shutil.which("cc")
    if cc is None or not Path("/usr/include/linux/uhid.h").is_file():
        pytest.skip("needs cc and linux/uhid.h")
    (tmp_path / "l.c").write_text(_LAYOUT_C)
    subprocess.run([cc, "-o", str(tmp_path / "l"), str(tmp_path / "l.c")], check=True)
    size, rd_size, rd_data, in_data, reply_data, input2 = (
        int(x) for x in subprocess.run([str(tmp_path / "l")], capture_output=True, text=True,
                                       check=True).stdout.split())
    assert size == hidtool.UHID_EVENT_SIZE
    assert hidtool._CREATE2.size <= size
    assert rd_size == 4 + 128 + 64 + 64
    assert rd_data == hidtool._CREATE2.size - hidtool.HID_MAX_DESCRIPTOR_SIZE
    assert in_data == hidtool._INPUT2.size - hidtool.UHID_DATA_MAX
    assert reply_data == hidtool._REPORT_REPLY.size - hidtool.UHID_DATA_MAX
    assert input2 == hidtool.UHID_INPUT2


def test_scenario_parsing() -> None:
    steps = hidtool.parse_scenario("send 01 ff; quiet 300;read 01 .. 2F ;wait 5")
    assert steps == [("send", b"\x01\xff"), ("quiet", 300), ("read", [1, None, 0x2F]),
                     ("wait", 5)]
    for bad in ("", "send 1", "send 01 ..", "read", "quiet x", "poke 01"):
        with pytest.raises(ValueError):
            hidtool.parse_scenario(bad)


def test_report_descriptor_reports_are_nine_bytes() -> None:
    # Two input reports (IDs 1, 2) of 8 one-byte fields: what hid.c's REPORT_SIZE assumes.
    rd = hidtool.REPORT_DESCRIPTOR
    assert rd.count(bytes([0x85, 0x01])) == 1 and rd.count(bytes([0x85, 0x02])) == 1
    assert rd.count(bytes([0x95, 0x08])) == 2 and rd.count(bytes([0x75, 0x08])) == 1


def _hid_spec_run(obj: Path, name: str):
    for spec in object_specs(obj, "x86_64").specs:
        if spec.prog_name == name:
            return spec.runs[0]
    raise KeyError(name)


@pytest.fixture(scope="module")
def hid_obj(toolchain_73) -> Path:
    from harness.progs.compile import compile_prog

    return compile_prog(REPO / "bpf_progs" / "hid.c", toolchain_73)


def test_hid_specs_and_jobs(hid_obj: Path) -> None:
    jobs = {j.name: j for j in plan([hid_obj], "x86_64")}
    assert set(jobs) == {"hid_rewrite", "hid_drop", "hid_wq_inject", "hid_sleepable_in_event"}
    wq = jobs["hid_wq_inject"].agent_job("/x.o")
    assert wq["execute"] is True and wq["hid"].startswith("send 01 2a")
    refused = jobs["hid_sleepable_in_event"].agent_job("/x.o")
    assert refused["execute"] is False and "hid" not in refused


def test_judge_hid(hid_obj: Path) -> None:
    run = _hid_spec_run(hid_obj, "hid_wq_inject")
    ok = {"loaded": True, "verifier_log": "", "hid": {"ok": True, "steps": []}}
    assert judge(run, ok).verdict == PASS
    bad = {"loaded": True, "verifier_log": "",
           "hid": {"ok": False, "error": "no report within 2 s", "steps": ["send 01"]}}
    verdict = judge(run, bad)
    assert verdict.verdict == FAIL and "no report" in verdict.reason
    assert any("send 01" in d for d in verdict.details)
    assert judge(run, {"loaded": True, "verifier_log": ""}).verdict == ERROR
    attach = {"loaded": True, "verifier_log": "", "run_error": "bpf_map__attach_struct_ops"}
    assert judge(run, attach).verdict == FAIL


def test_struct_ops_maps_name_their_programs(hid_obj: Path, libbpf_so: Path) -> None:
    """The agent's shadow-value scan finds exactly the program each map was given."""
    lb = agent.Libbpf(str(libbpf_so))
    opts = agent.ObjectOpenOpts(sz=ctypes.sizeof(agent.ObjectOpenOpts))
    obj = lb.lib.bpf_object__open_file(str(hid_obj).encode(), ctypes.byref(opts))
    assert obj
    try:
        progs = {p: lb.lib.bpf_program__name(p).decode() for p in lb.programs(obj)}
        uses = {}
        for m in lb.maps(obj):
            if lb.lib.bpf_map__type(m) == agent.BPF_MAP_TYPE_STRUCT_OPS:
                found = agent._struct_ops_programs(lb, m, set(progs))
                uses[lb.lib.bpf_map__name(m).decode()] = {progs[p] for p in found}
        assert uses == {"rewrite_ops": {"hid_rewrite"}, "drop_ops": {"hid_drop"},
                        "wq_inject_ops": {"hid_wq_inject"},
                        "sleepable_in_event_ops": {"hid_sleepable_in_event"}}
        selected = {p for p, n in progs.items() if n == "hid_drop"}
        kept = agent._isolate_struct_ops(lb, obj, selected)
        assert [lb.lib.bpf_map__name(m).decode() for m in kept] == ["drop_ops"]
        agent._set_hid_id(lb, kept, 0x1234)
        size = ctypes.c_size_t()
        data = lb.lib.bpf_map__initial_value(kept[0], ctypes.byref(size))
        assert ctypes.c_int32.from_address(data).value == 0x1234
    finally:
        lb.lib.bpf_object__close(obj)


def test_hidtool_cli_without_uhid(monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setattr(hidtool, "UHID_PATH", "/nonexistent/uhid")
    assert hidtool.main(["probe"]) == 0
    assert '"usable": false' in capsys.readouterr().out
    with pytest.raises(hidtool.HidUnavailable):
        hidtool.UhidDevice()
    assert hidtool.main([]) == 2


def test_same_program_in_two_objects_is_refused(hid_obj: Path, tmp_path: Path) -> None:
    from harness.progs.runner import RunnerError

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    copies = [tmp_path / d / "hid.bpf.o" for d in ("a", "b")]
    for copy in copies:
        copy.write_bytes(hid_obj.read_bytes())
    with pytest.raises(RunnerError, match="program hid/hid_rewrite is in both"):
        plan(copies, "x86_64")
