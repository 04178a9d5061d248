"""Sub-test names read from C text (what the guest suite collects before any build)."""

from __future__ import annotations

from pathlib import Path

from harness.progs.source_ids import calls_any, program_runs, source_job_ids

SOURCE = r'''
char _license[] SEC("license") = "GPL";
struct { __uint(type, BPF_MAP_TYPE_ARRAY); } arr SEC(".maps");

/* SEC("tc") int commented_out(void *ctx) { return 0; } */
SEC("tc")
__description("plain")   /* a comment { with a brace */
__success __retval(0)
int plain(void *ctx)
{
	return bpf_wq_set_callback(0, 0, 0);
}

SEC("?tc")
__failure __msg("expected {{[0-9]+}} got {")
__failure_unpriv __msg_unpriv("unpriv {")
int both_modes(struct __sk_buff *skb) { return 0; }

SEC("socket")
__success_unpriv __retval_unpriv(1)
__naked void only_unpriv(void)
{
	asm volatile ("r0 = 1; exit;");
}

SEC("tc")
__auxiliary
int helper_prog(void *ctx) { return 0; }

SEC("struct_ops/hid_device_event")
__success
int BPF_PROG(wrapped, struct hid_bpf_ctx *hctx, enum hid_report_type type)
{
	return 0;
}

SEC(".struct_ops.link")
struct hid_bpf_ops ops = { .hid_device_event = (void *)wrapped };

SEC("syscall")
int no_annotations(void *ctx) { return 0; }
'''


def _write(tmp_path: Path, text: str = SOURCE, name: str = "demo.c") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_modes_auxiliaries_wrappers_and_data_sections(tmp_path: Path) -> None:
    assert program_runs(_write(tmp_path)) == [
        "plain", "both_modes", "both_modes @unpriv", "only_unpriv @unpriv", "wrapped",
        "no_annotations"]


def test_rnd_hi32_twin_only_for_callers_of_implicit_kfuncs(tmp_path: Path) -> None:
    src = _write(tmp_path)
    implicit = frozenset({"bpf_wq_set_callback", "bpf_wq_set_callback_impl"})
    ids = source_job_ids(src, implicit)
    assert ids[:2] == ["demo/plain", "demo/plain@rnd_hi32"]
    assert len(ids) == 2 * 6
    assert source_job_ids(src, frozenset({"bpf_task_work_schedule_signal"}))[:2] == [
        "demo/plain", "demo/both_modes"]


def test_kfunc_named_only_in_comments_or_strings_is_not_a_call(tmp_path: Path) -> None:
    src = _write(tmp_path, '/* bpf_stream_vprintk */ const char *s = "bpf_stream_vprintk";\n')
    assert not calls_any(src, frozenset({"bpf_stream_vprintk"}))
    assert calls_any(_write(tmp_path, "int x = bpf_stream_vprintk(1);\n", "b.c"),
                     frozenset({"bpf_stream_vprintk"}))
