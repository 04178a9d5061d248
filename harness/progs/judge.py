"""Turn the agent's raw report of one run into a verdict, with test_loader's checks in its order.

test_loader.c's ``run_subtest`` decides: the object must open, the load must
succeed or fail as ``__success``/``__failure`` say, the verifier log must
match ``__msg``/``__not_msg``, the translated and the JITed program
``__xlated``/``__jited`` (disasm.py and jit_disasm.py make their text on the host
from the images the agent fetched), and only for an expected success with
``__retval`` is the program run, its return value compared (``POINTER_VALUE``
accepts anything) and its streams matched. The first failing check is the
reason; libbpf's own warnings go with it because for a kfunc with broken BTF
the interesting line is libbpf's, not the verifier's. A program with the
harness's ``__hid`` scenario is judged on that scenario where test_loader
would judge a test run.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.progs.disasm import program_text
from harness.progs.expectations import POINTER_VALUE, Mode, Run
from harness.progs.jit_disasm import JitDisasmError, jited_program_text
from harness.progs.matching import validate

PASS, FAIL, SKIP, ERROR = "pass", "fail", "skip", "error"


@dataclass
class Verdict:
    verdict: str
    reason: str = ""
    details: list[str] = field(default_factory=list)


def describe(mode: Mode) -> str:
    """Short human form of what a run expects, for the result table."""
    parts = ["failure" if mode.expect_failure else "success"]
    if mode.execute and not mode.expect_failure:
        parts.append("retval=any" if mode.retval == POINTER_VALUE else f"retval={mode.retval}")
    if mode.msgs:
        parts.append(f"{len(mode.msgs)} msg")
    if mode.xlated:
        parts.append(f"{len(mode.xlated)} xlated")
    if mode.jited:
        parts.append(f"{len(mode.jited)} jited")
    if mode.stdout:
        parts.append(f"{len(mode.stdout)} stdout")
    if mode.stderr:
        parts.append(f"{len(mode.stderr)} stderr")
    return " ".join(parts)


def libbpf_warnings(raw: dict) -> list[str]:
    """libbpf's warning-level lines (level 0), newest last, stripped."""
    return [str(msg).strip() for level, msg in raw.get("libbpf_log", []) if int(level) == 0]


def _why_libbpf(raw: dict) -> str:
    warns = [w for w in libbpf_warnings(raw) if "failed to load object" not in w]
    return f" [libbpf: {warns[0]}]" if warns else ""


def judge(run: Run, raw: dict) -> Verdict:
    """Apply test_loader's checks to one agent result."""
    mode = run.mode
    if raw.get("skip"):
        return Verdict(SKIP, str(raw["skip"]))
    if raw.get("agent_error"):
        return Verdict(ERROR, f"agent: {raw['agent_error']}")
    if raw.get("open_error"):
        return Verdict(FAIL, f"bpf_object__open failed: {raw['open_error']}{_why_libbpf(raw)}")
    log = str(raw.get("verifier_log", ""))
    if mode.expect_failure and raw.get("loaded"):
        return Verdict(FAIL, "unexpected_load_success")
    if not mode.expect_failure and not raw.get("loaded"):
        last = [ln for ln in log.strip().splitlines() if ln.strip()
                and not ln.startswith(("processed ", "verification time", "stack depth"))]
        tail = f": {last[-1]}" if last else ""
        return Verdict(FAIL, f"unexpected_load_failure ({raw.get('load_error')}){tail}"
                       f"{_why_libbpf(raw)}")
    report = validate(log, list(mode.msgs))
    if not report.ok:
        return Verdict(FAIL, f"expect_msg: {report.summary()}", report.details)
    if mode.xlated and raw.get("loaded"):
        xlated = raw.get("xlated") or {}
        if "hex" not in xlated:
            return Verdict(FAIL, f"get_xlated_program: {xlated.get('error', 'no instructions')}")
        report = validate(program_text(bytes.fromhex(xlated["hex"])), list(mode.xlated))
        if not report.ok:
            return Verdict(FAIL, f"expect_xlated: {report.summary()}", report.details)
    if mode.jited and raw.get("loaded"):
        verdict = _judge_jited(run, raw.get("jited") or {})
        if verdict is not None:
            return verdict
    if run.spec.hid and not mode.expect_failure:
        verdict = _judge_hid(raw)
        if verdict is not None:
            return verdict
    if not (mode.execute and not mode.expect_failure):
        return Verdict(PASS)
    if raw.get("run_error"):
        return Verdict(FAIL, str(raw["run_error"]))
    retval = raw.get("retval")
    if retval != mode.retval and mode.retval != POINTER_VALUE:
        return Verdict(FAIL, f"Unexpected retval: {retval} != {mode.retval}")
    for name, patterns in (("stderr", mode.stderr), ("stdout", mode.stdout)):
        if not patterns:
            continue
        stream = raw.get(name) or {}
        if int(stream.get("rc", -1)) <= 0:
            return Verdict(FAIL, f"{name} stream read returned {stream.get('rc')} "
                                 f"{stream.get('error', '')}".rstrip())
        report = validate(str(stream.get("text", "")), list(patterns))
        if not report.ok:
            return Verdict(FAIL, f"expect_{name}: {report.summary()}", report.details)
    then = raw.get("then_run")
    if then is not None:
        if then.get("run_error"):
            return Verdict(FAIL, f"checker {then.get('program')}: {then['run_error']}")
        if then.get("retval") != then.get("want"):
            return Verdict(FAIL, f"checker {then.get('program')} returned {then.get('retval')} "
                                 f"!= {then.get('want')} after {then.get('attempts')} runs")
    return Verdict(PASS)


def _judge_jited(run: Run, jited: dict) -> Verdict | None:
    """test_loader's __jited check: the JIT image's text (get_jited_program_text, here
    jit_disasm on the host) against the patterns; None when they match."""
    if "hex" not in jited:
        return Verdict(FAIL, f"get_jited_program_text: {jited.get('error', 'no image')}")
    try:
        text = jited_program_text(bytes.fromhex(jited["hex"]), list(jited.get("func_lens", [])),
                                  run.spec.arch)
    except JitDisasmError as exc:
        return Verdict(FAIL, f"get_jited_program_text: {exc}")
    report = validate(text, list(run.mode.jited))
    if not report.ok:
        return Verdict(FAIL, f"expect_jited: {report.summary()}", report.details)
    return None


def _judge_hid(raw: dict) -> Verdict | None:
    """The ``__hid`` scenario's outcome (harness extension); None when it passed.

    The steps seen so far go into the details, so a mismatch shows which
    report came back instead of which one was wanted.
    """
    if raw.get("run_error"):
        return Verdict(FAIL, str(raw["run_error"]))
    hid = raw.get("hid")
    if hid is None:
        return Verdict(ERROR, "hid: the agent ran no HID scenario")
    if not hid.get("ok"):
        details = [f"hid_id={hid.get('hid_id')} hidraw={hid.get('hidraw')}"]
        details += [f"  {step}" for step in hid.get("steps", [])]
        return Verdict(FAIL, f"hid: {hid.get('error', 'report mismatch')}", details)
    return None
