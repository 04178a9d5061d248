"""`harness btf kfuncs --lint`: each rule fires once on a small blob built for it, a correct
kfunc of every flag kind gives nothing, and the 7.3 kernel's own BTF is clean.

The blobs are made with harness.btf's encoder (Btf.add_*) and the flags with synthetic
Set8s, as find_kfuncs reads them from a .BTF_ids section; the CLI test assembles a real
ELF (tests/helpers/synth) so the sets come through read_set8s as from a kernel.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from harness.btf import INT_SIGNED, Btf, Kind
from harness.btf.kfunc_lint import RULES, Finding, LintReport, lint_kfuncs
from harness.btf.kfuncs import find_kfuncs, load_for_kfuncs, read_set8s
from harness.btf.load import btf_bytes
from harness.cli import main
from harness.kbuild.artifacts import BuildArtifacts
from harness.kfunc_abi import (
    ARENA_ATTR,
    BTF_SET8_KFUNCS,
    KF_ACQUIRE,
    KF_ARENA_ARG1,
    KF_ARENA_ARG2,
    KF_ARENA_RET,
    KF_FASTCALL,
    KF_IMPLICIT_ARGS,
    KF_RCU,
    KF_RELEASE,
    KF_RET_NULL,
    KF_SLEEPABLE,
    Set8,
    SetEntry,
)
from tests.helpers import synth

SET = "bpf_task_set"
SRC = f"set {SET} (.BTF_ids)"


class Kernel:
    """A tiny kernel BTF plus BTF_SET8_KFUNCS sets, as resolve_btfids leaves them."""

    def __init__(self) -> None:
        b = self.btf = Btf()
        self.int = b.add_int("int", 4, INT_SIGNED)
        self.task = b.add_struct("task_struct", 4)
        b.add_field("pid", self.int, 0)
        aux = b.add_struct("bpf_prog_aux", 4)
        b.add_field("id", self.int, 0)
        meta = b.add_struct("btf_struct_meta", 4)
        b.add_field("x", self.int, 0)
        wq = b.add_struct("bpf_wq", 8)
        b.add_field("w", self.int, 0)
        self.p_task = b.add_ptr(self.task)
        self.p_aux = b.add_ptr(aux)
        self.p_meta = b.add_ptr(meta)
        self.p_wq = b.add_ptr(wq)
        self.p_int = b.add_ptr(self.int)
        self.p_void = b.add_ptr(0)
        self.arena_void = b.add_ptr(b.add_type_attr(ARENA_ATTR, 0))
        self.sets: dict[str, list[SetEntry]] = {}

    def func(self, name: str, ret: int, params: list[tuple[str, int]], *, flags: int | None = 0,
             sets: tuple[str, ...] = (SET,), tags: tuple[str, ...] = ("bpf_kfunc",)) -> int:
        """A FUNC with its decl tags; in `sets` with `flags` unless flags is None."""
        proto = self.btf.add_func_proto(ret)
        for pname, ptype in params:
            self.btf.add_func_param(pname, ptype)
        fid = self.btf.add_func(name, 1, proto)
        for tag in tags:
            self.btf.add_decl_tag(tag, fid, -1)
        if flags is not None:
            for s in sets:
                self.sets.setdefault(s, []).append(SetEntry(fid, flags, name))
        return fid

    def set8s(self) -> list[Set8]:
        return [Set8(name, BTF_SET8_KFUNCS, entries) for name, entries in self.sets.items()]

    def lint(self, *, with_sets: bool = True,
             kernel: tuple[int, int] | None = None) -> LintReport:
        return lint_kfuncs(self.btf, find_kfuncs(self.btf, self.set8s() if with_sets else None),
                           kernel=kernel)


def only(report: LintReport) -> Finding:
    assert len(report.findings) == 1, report.format()
    return report.findings[0]


def fastcall_anchor(k: Kernel) -> None:
    """A correct KF_FASTCALL kfunc, so the BTF counts as emitting bpf_fastcall tags."""
    k.func("bpf_cast_to_kern_ctx", k.p_void, [("obj", k.p_void)], flags=KF_FASTCALL,
           tags=("bpf_kfunc", "bpf_fastcall"))


# ---- a correct kernel -----------------------------------------------------------------------


def correct_kernel() -> Kernel:
    """One correct kfunc per flag kind, in the forms the 7.3 tree has them."""
    k = Kernel()
    b = k.btf
    task_t = b.add_typedef("task_t", k.task)
    k.func("bpf_task_acquire", k.p_task, [("p", k.p_task)],
           flags=KF_ACQUIRE | KF_RCU | KF_RET_NULL)
    k.func("bpf_task_from_pid", b.add_const(b.add_ptr(task_t)), [("pid", k.int)],
           flags=KF_ACQUIRE | KF_RET_NULL)                  # const pointer to a typedef
    k.func("bpf_task_release", 0, [("p", k.p_task)], flags=KF_RELEASE)
    k.func("bpf_int_mem_release", 0, [("p", k.p_int)], flags=KF_RELEASE)   # any pointer
    k.func("bpf_list_front", k.p_int, [("head", k.p_int)], flags=KF_RET_NULL)
    k.func("bpf_res_spin_lock", k.int, [("lock", k.p_int)], flags=KF_RET_NULL)  # by func id
    # bpf_obj_new: KF_ACQUIRE on void *, allowed by func id; legacy _impl kfunc of its own
    k.func("bpf_obj_new", k.p_void, [("local_type_id__k", k.int)],
           flags=KF_ACQUIRE | KF_RET_NULL | KF_IMPLICIT_ARGS)
    k.func("bpf_obj_new_impl", k.p_void, [("local_type_id__k", k.int), ("meta__ign", k.p_void)],
           flags=KF_ACQUIRE | KF_RET_NULL)
    k.func("bpf_obj_drop_impl", 0, [("p__alloc", k.p_void), ("meta__ign", k.p_void)],
           flags=KF_RELEASE)
    # a tool-made _impl: the kfunc's tags but bpf_kfunc, prog->aux last
    cb = b.add_ptr(b.add_func_proto(k.int))
    k.func("bpf_wq_set_callback", k.int, [("wq", k.p_wq), ("cb", cb), ("flags", k.int)],
           flags=KF_IMPLICIT_ARGS | KF_FASTCALL, tags=("bpf_kfunc", "bpf_fastcall"))
    k.func("bpf_wq_set_callback_impl", k.int,
           [("wq", k.p_wq), ("cb", cb), ("flags", k.int), ("aux", k.p_aux)], flags=None,
           tags=("bpf_fastcall",))
    k.func("bpf_list_add", k.int, [("head", k.p_int)], flags=KF_IMPLICIT_ARGS)
    k.func("bpf_list_add_impl", k.int, [("head", k.p_int), ("meta", k.p_meta), ("off", k.int)],
           flags=None, tags=())                             # meta + off: fixup supplies them
    # arena: attributed pointers where the flags and names say
    k.func("bpf_arena_alloc_pages", k.arena_void,
           [("p__map", k.p_void), ("addr__ign", k.arena_void), ("cnt", k.int)],
           flags=KF_ARENA_RET | KF_ARENA_ARG2)
    k.func("bpf_arena_first", 0, [("p", k.arena_void), ("q__arena", k.arena_void)],
           flags=KF_ARENA_ARG1)
    fastcall_anchor(k)
    # the same kfunc in two sets with the same flags
    k.func("bpf_sleepy", k.int, [], flags=KF_SLEEPABLE, sets=(SET, "other_set"))
    return k


def test_correct_kfuncs_of_every_flag_kind_have_no_findings() -> None:
    report = correct_kernel().lint()
    assert report.findings == [] and report.skipped == [], report.format()
    assert report.kfuncs == 15
    assert report.format() == "0 finding(s) in 15 kfunc(s)"


def test_rules_are_documented() -> None:
    import harness.btf.kfunc_lint as mod

    assert len(RULES) == 8
    for rule in RULES:
        assert f"- {rule}:" in (mod.__doc__ or ""), rule


# ---- each rule once -------------------------------------------------------------------------


def test_acquire_returns_pointer() -> None:
    k = Kernel()
    k.func("bpf_bad_acquire", k.p_int, [("p", k.p_task)], flags=KF_ACQUIRE)
    f = only(k.lint())
    assert (f.kfunc, f.rule, f.source) == ("bpf_bad_acquire", "acquire-returns-pointer", SRC)
    assert "returns int *" in f.message
    # the void * exemption is vmlinux's: a module's bpf_obj_new gets the finding
    mod = Kernel()
    split = Btf(mod.btf)
    proto = split.add_func_proto(mod.p_void)
    fid = split.add_func("bpf_obj_new", 1, proto)
    split.add_decl_tag("bpf_kfunc", fid, -1)
    kf = find_kfuncs(split, [Set8("m", BTF_SET8_KFUNCS, [SetEntry(fid, KF_ACQUIRE, None)])])
    assert [x.rule for x in lint_kfuncs(split, kf).findings] == ["acquire-returns-pointer"]


def test_ret_null_returns_pointer() -> None:
    k = Kernel()
    k.func("bpf_bad_null", k.int, [], flags=KF_RET_NULL | KF_SLEEPABLE, sets=(SET, "s2"))
    f = only(k.lint())
    assert (f.kfunc, f.rule) == ("bpf_bad_null", "ret-null-returns-pointer")
    assert f.source == f"sets {SET}, s2 (.BTF_ids)"


def test_release_takes_pointer() -> None:
    k = Kernel()
    k.func("bpf_bad_release", 0, [("x", k.int), ("p", k.p_task)], flags=KF_RELEASE)
    f = only(k.lint())
    assert (f.kfunc, f.rule, f.source) == ("bpf_bad_release", "release-takes-pointer", SRC)
    assert "parameter 0 `x` is int" in f.message
    k2 = Kernel()
    k2.func("bpf_release_nothing", 0, [], flags=KF_RELEASE)
    k2.func("bpf_release_ign", 0, [("p__ign", k2.p_task)], flags=KF_RELEASE)
    assert [(x.kfunc, x.rule) for x in k2.lint().findings] == [
        ("bpf_release_ign", "release-takes-pointer"),
        ("bpf_release_nothing", "release-takes-pointer")]


def test_implicit_args_unresolved_btf() -> None:
    """No _impl yet: the prototype still holds the implicit parameter (before resolve_btfids)."""
    k = Kernel()
    k.func("bpf_wq_set_callback", k.int, [("wq", k.p_wq), ("aux", k.p_aux)],
           flags=KF_IMPLICIT_ARGS)
    f = only(k.lint())
    assert (f.kfunc, f.rule, f.source) == ("bpf_wq_set_callback", "implicit-args", SRC)
    assert "no FUNC bpf_wq_set_callback_impl" in f.message
    assert "not been through resolve_btfids" in f.message
    k2 = Kernel()
    k2.func("bpf_lonely", k2.int, [("a", k2.int)], flags=KF_IMPLICIT_ARGS)
    assert "cannot find function bpf_lonely_impl in BTF" in only(k2.lint()).message


def test_implicit_args_prototype_mismatch() -> None:
    k = Kernel()
    k.func("bpf_mismatch", k.int, [("a", k.int)], flags=KF_IMPLICIT_ARGS)
    k.func("bpf_mismatch_impl", k.int, [("a", k.p_int), ("aux", k.p_aux)], flags=None, tags=())
    f = only(k.lint())
    assert (f.kfunc, f.rule, f.source) == ("bpf_mismatch", "implicit-args", SRC)
    assert "parameter 0 is `int a` but `int *a` in bpf_mismatch_impl" in f.message


def test_implicit_args_dropped_parameters() -> None:
    k = Kernel()
    # cut at a plain int: resolve_btfids would not have, and the verifier passes nothing there
    k.func("bpf_cut", k.int, [("a", k.int)], flags=KF_IMPLICIT_ARGS)
    k.func("bpf_cut_impl", k.int, [("a", k.int), ("b", k.int)], flags=None, tags=())
    # a btf_struct_meta the verifier only feeds to bpf_obj_new & co
    k.func("bpf_meta", k.int, [], flags=KF_IMPLICIT_ARGS)
    k.func("bpf_meta_impl", k.int, [("meta", k.p_meta)], flags=None, tags=())
    # nothing dropped at all
    k.func("bpf_same", k.int, [("a", k.int)], flags=KF_IMPLICIT_ARGS)
    k.func("bpf_same_impl", k.int, [("a", k.int)], flags=None, tags=())
    got = {(f.kfunc, f.rule, f.message.split(":")[0]) for f in k.lint().findings}
    assert {(n, r) for n, r, _m in got} == {("bpf_cut", "implicit-args"),
                                             ("bpf_meta", "implicit-args"),
                                             ("bpf_same", "implicit-args")}
    messages = " | ".join(f.message for f in k.lint().findings)
    assert "starts the implicit arguments but is no pointer to struct bpf_prog_aux" in messages
    assert "passes only prog->aux" in messages
    assert "no implicit argument is left" in messages


def test_arena_on_pointers() -> None:
    k = Kernel()
    k.func("bpf_arena_flag", k.int, [("x", k.int)], flags=KF_ARENA_ARG1)
    f = only(k.lint())
    assert (f.kfunc, f.rule, f.source) == ("bpf_arena_flag", "arena-on-pointers", SRC)
    assert "KF_ARENA_ARG1 but parameter 0 `x` is int" in f.message
    k2 = Kernel()
    k2.func("bpf_arena_name", 0, [("p__arena", k2.int)], flags=0)
    f = only(k2.lint())
    assert (f.rule, f.source) == ("arena-on-pointers", "parameter name p__arena")
    k3 = Kernel()
    k3.func("bpf_arena_more", k3.int, [("p", k3.p_void)], flags=KF_ARENA_RET | KF_ARENA_ARG2)
    assert sorted(x.message.split(" but ")[0] for x in k3.lint().findings) == [
        "KF_ARENA_ARG2", "KF_ARENA_RET"]
    # resolve_btfids wants the PTR itself: a typedef to a pointer fails the build
    k4 = Kernel()
    k4.func("bpf_arena_typedef", k4.btf.add_typedef("vp", k4.p_void), [], flags=KF_ARENA_RET)
    assert only(k4.lint()).rule == "arena-on-pointers"


def test_fastcall_tag() -> None:
    k = Kernel()
    fastcall_anchor(k)
    k.func("bpf_flag_only", k.int, [], flags=KF_FASTCALL)
    k.func("bpf_tag_only", k.int, [], flags=0, tags=("bpf_kfunc", "bpf_fastcall"))
    got = [(f.kfunc, f.rule, f.source) for f in k.lint().findings]
    assert got == [("bpf_flag_only", "fastcall-tag", SRC),
                   ("bpf_tag_only", "fastcall-tag", "decl tag bpf_fastcall")]


def test_fastcall_skipped_when_no_tag_is_emitted() -> None:
    k = Kernel()
    k.func("bpf_flag_only", k.int, [], flags=KF_FASTCALL)
    report = k.lint()
    assert report.findings == []
    assert [s.rule for s in report.skipped] == ["fastcall-tag"]
    assert "bpf_fastcall" in report.skipped[0].reason


def test_inconsistent_sets() -> None:
    k = Kernel()
    k.func("bpf_two_sets", k.int, [], flags=KF_SLEEPABLE, sets=("set_a",))
    k.func("bpf_other", k.int, [], flags=0, sets=("set_b",))
    k.sets["set_b"].append(SetEntry(k.btf.find("bpf_two_sets", Kind.FUNC), 0, "bpf_two_sets"))
    f = only(k.lint())
    assert (f.kfunc, f.rule) == ("bpf_two_sets", "inconsistent-sets")
    assert f.source == "sets set_a, set_b (.BTF_ids)"
    assert "set_a=KF_SLEEPABLE, set_b=0" in f.message
    # 6.12's hid_bpf sets differ on purpose: each hook reads its own set's flags there
    old = k.lint(kernel=(6, 12))
    assert not old.findings
    assert "inconsistent-sets" in [s.rule for s in old.skipped]
    assert only(k.lint(kernel=(7, 3))).rule == "inconsistent-sets"


def test_impl_tag() -> None:
    k = Kernel()
    fastcall_anchor(k)
    # the tool-made _impl must not carry bpf_kfunc ...
    k.func("bpf_tagged", k.int, [], flags=KF_IMPLICIT_ARGS)
    k.func("bpf_tagged_impl", k.int, [("aux", k.p_aux)], flags=None, tags=("bpf_kfunc",))
    f = only(k.lint())
    assert (f.kfunc, f.rule) == ("bpf_tagged", "impl-tag")
    assert f.source == "decl tag bpf_kfunc on bpf_tagged_impl"
    # ... and carries the kfunc's other tags (main.c copies bpf_fastcall too)
    k2 = Kernel()
    fastcall_anchor(k2)
    k2.func("bpf_fast_impl_less", k2.int, [], flags=KF_IMPLICIT_ARGS | KF_FASTCALL,
            tags=("bpf_kfunc", "bpf_fastcall"))
    k2.func("bpf_fast_impl_less_impl", k2.int, [("aux", k2.p_aux)], flags=None, tags=())
    f = only(k2.lint())
    assert (f.rule, f.source) == ("impl-tag", "decl tags of bpf_fast_impl_less and "
                                              "bpf_fast_impl_less_impl")
    assert "missing bpf_fastcall" in f.message


# ---- without flags ------------------------------------------------------------------------------


def test_raw_btf_skips_flag_rules_and_runs_the_rest() -> None:
    k = Kernel()
    k.func("bpf_acq", k.int, [("p__arena", k.int)], flags=KF_ACQUIRE)       # flag unseen
    k.func("bpf_wq_set_callback", k.int, [("wq", k.p_wq)], flags=KF_IMPLICIT_ARGS)
    k.func("bpf_wq_set_callback_impl", k.int, [("wq", k.p_int), ("aux", k.p_aux)],
           flags=None, tags=())
    report = k.lint(with_sets=False)
    assert [(f.kfunc, f.rule) for f in report.findings] == [
        ("bpf_acq", "arena-on-pointers"), ("bpf_wq_set_callback", "implicit-args")]
    assert report.findings[1].source.startswith("FUNC bpf_wq_set_callback_impl (no flags")
    assert {s.rule for s in report.skipped} == set(RULES) - {"impl-tag"}
    assert all("no KF_* flags" in s.reason for s in report.skipped)


def test_checked_in_73_btf_is_clean(vmlinux_73_raw: bytes) -> None:
    """The real 7.3 BTF (raw: no flags) passes; an edited _impl is caught by inference."""
    btf = Btf.from_bytes(vmlinux_73_raw)
    assert lint_kfuncs(btf, find_kfuncs(btf)).findings == []
    impl = btf.find("bpf_wq_set_callback_impl", Kind.FUNC)
    proto = btf[btf[impl].type].copy()
    proto.params[0], proto.params[2] = proto.params[2], proto.params[0]
    fn = btf[impl].copy()
    fn.type = btf.add(proto)
    btf[impl] = fn
    got = [(f.kfunc, f.rule) for f in lint_kfuncs(btf, find_kfuncs(btf)).findings]
    assert got == [("bpf_wq_set_callback", "implicit-args")] * 2


# ---- the command line -------------------------------------------------------------------------


def test_cli_raw_btf_exit_codes_and_json(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    good, bad = tmp_path / "good.btf", tmp_path / "bad.btf"
    good.write_bytes(correct_kernel().btf.to_bytes())
    k = Kernel()
    k.func("bpf_arena_name", 0, [("p__arena", k.int)])
    k.func("bpf_fine", 0, [("p", k.p_task)])
    bad.write_bytes(k.btf.to_bytes())
    assert main(["btf", "kfuncs", str(good), "--lint"]) == 0
    out = capsys.readouterr().out
    assert "skipped [acquire-returns-pointer] no KF_* flags" in out
    assert out.rstrip().endswith("0 finding(s) in 15 kfunc(s)")
    assert main(["btf", "kfuncs", str(bad), "--lint", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert isinstance(data, list)
    findings = [d for d in data if not d["skipped"]]
    assert findings == [{"kfunc": "bpf_arena_name", "rule": "arena-on-pointers",
                         "message": findings[0]["message"], "source": "parameter name p__arena",
                         "skipped": False}]
    assert {d["rule"] for d in data if d["skipped"]} == set(RULES) - {"impl-tag"}
    # a name filter keeps only those kfuncs' findings
    assert main(["btf", "kfuncs", str(bad), "bpf_fine", "--lint"]) == 0
    assert "0 finding(s) in 1 kfunc(s)" in capsys.readouterr().out
    junk = tmp_path / "junk"
    junk.write_bytes(b"\x9f\xeb\x01\x00" + b"\xff" * 40)
    assert main(["btf", "kfuncs", str(junk), "--lint"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("harness: error:")


@pytest.mark.skipif(shutil.which("as") is None, reason="needs binutils' as")
def test_cli_elf_flags_from_btf_ids(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An ELF with .BTF and unresolved .BTF_ids sets: flags and set names reach the findings."""
    k = Kernel()
    k.func("bpf_bad_acquire", k.int, [("p", k.p_task)], flags=None)
    k.func("bpf_task_release", 0, [("p", k.p_task)], flags=None)
    blob = tmp_path / "kernel.btf"
    blob.write_bytes(k.btf.to_bytes())
    asm = (f'.section .BTF,"a"\n.incbin "{blob}"\n.section .BTF_ids,"a"\n'
           + synth.set8(SET, [("bpf_bad_acquire", KF_ACQUIRE), ("bpf_task_release", KF_RELEASE)]))
    elf = synth.assemble(asm, tmp_path / "kernel.o")
    assert btf_bytes(elf) == blob.read_bytes() and read_set8s(elf)[0].name == SET
    assert main(["btf", "kfuncs", str(elf), "--lint", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert [(d["kfunc"], d["rule"], d["source"]) for d in data if not d["skipped"]] == [
        ("bpf_bad_acquire", "acquire-returns-pointer", SRC)]
    assert main(["btf", "kfuncs", str(elf), "bpf_task_*", "--lint"]) == 0
    assert "0 finding(s) in 1 kfunc(s)" in capsys.readouterr().out


# ---- the built kernel (kernel tier: never runs in the fast one) ----------------------------------


def test_built_73_vmlinux_is_clean(built_vmlinux: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The suite's 7.3 vmlinux, flags and all, has no finding (marked kernel via the fixture)."""
    assert main(["btf", "kfuncs", str(built_vmlinux), "--lint", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_built_73_bpf_testmod_finding(x86_build: BuildArtifacts) -> None:
    """bpf_testmod's bpf_kfunc_call_test_acq_rdonly_mem is KF_ACQUIRE on an `int *` return on
    purpose: selftests' kfunc_call_test_mem_acquire_fail expects "acquire kernel function does
    not return PTR_TO_BTF_ID". It must be the module's one finding."""
    if x86_build.bpf_testmod is None:
        pytest.skip("no bpf_testmod in this build")
    btf = load_for_kfuncs(x86_build.bpf_testmod)
    report = lint_kfuncs(btf, find_kfuncs(btf, read_set8s(x86_build.bpf_testmod)))
    assert [(f.kfunc, f.rule) for f in report.findings] == [
        ("bpf_kfunc_call_test_acq_rdonly_mem", "acquire-returns-pointer")]
