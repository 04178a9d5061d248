"""Sample matrix outcomes the report tests share: four cells with every kind of result
(a foreseen failure, a regression with a splat, a flaky program and a skip, an unreachable
board, a silent fix), built from real report types."""

from __future__ import annotations

from harness.progs.results import ProgResult

MATRIX = """
[axes]
kernel = ["7.2", "7.3"]
pahole = ["1.24"]
btfids = ["c", "python"]
arch = ["x86_64"]

[[expect]]
match = { kernel = "7.2", btfids = "c" }
programs = "kfunc_implicit_args/*"
verdict = "fail"
message = "incompatible with kernel"
reason = "C resolve_btfids drops the implicit-arg kfuncs"

[[expect]]
match = { kernel = "7.3", btfids = "python" }
programs = ["kfunc_implicit_args/*"]
verdict = "fail"
message = ["wasn't resolved"]
reason = "thought broken on 7.3 too"
"""
BROKEN, REGRESSED, UNREACHABLE, FIXED = (
    "7.2-pahole1.24-c-x86_64", "7.2-pahole1.24-python-x86_64",
    "7.3-pahole1.24-c-x86_64", "7.3-pahole1.24-python-x86_64")
BTF_SHA = "cc9c3dc16c49" + "0" * 52
# A verifier log as the kernel prints it, with an ANSI colour escape (ESC: XML 1.0 has no
# way to carry it) and non-ASCII from the program's source line.
WQ_LOG = """func#0 @0
0: R1=ctx() R10=fp0
; bpf_wq_init(&elem->w, &hmap, 0); /* → 10µs */ @ wq.c:42
0: (bf) r6 = r1                       ; R1=ctx() R6_w=ctx()
1: (85) call bpf_wq_init#70433
\x1b[31marg#0 pointer type STRUCT bpf_wq must point to scalar, or struct with scalar\x1b[0m
processed 2 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0
"""
IMPLICIT_LIBBPF = [
    "libbpf: extern (func ksym) 'bpf_kfunc_implicit_arg': func_proto [25] "
    "incompatible with kernel [70171]",
    "libbpf: failed to load object 'kfunc_implicit_args'",
]
CONSOLE = """[    0.000000] Linux version 7.2.0-kfunc (root@ci) #1 SMP PREEMPT_DYNAMIC
[    1.204311] overlayfs: upper fs does not support tmpfile.
[   12.345678] BUG: kernel NULL pointer dereference, address: 0000000000000008
[   12.345901] RIP: 0010:bpf_task_work_schedule+0x2a/0x90
"""


def result(obj: str, program: str, verdict: str, reason: str = "", **kw: object) -> ProgResult:
    return ProgResult(object=obj, program=program, arch="x86_64", verdict=verdict,
                      expected="success", reason=reason, **kw)


