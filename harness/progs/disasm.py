"""The kernel's BPF instruction printer, as test_loader's ``__xlated(...)`` sees it.

test_loader.c checks ``__xlated("...")`` expectations against the text of a loaded
program's translated instructions: ``get_xlated_program_text`` runs every instruction
through selftests' ``disasm_insn`` (disasm_helpers.c), which calls the kernel's
``print_bpf_insn`` (kernel/bpf/disasm.c), drops the ``"(XX) "`` opcode prefix, cuts
helper and kfunc calls at their ``#id`` suffix and prints pseudo calls by ``insn->off``
(where the verifier hides the original pc-relative imm), and writes
``"<index>: <text>\\n"`` per instruction (ld_imm64 taking two indexes).

Reproducing it here lets the harness match ``__xlated`` expectations, and show what a
program was rewritten to, from the raw instruction bytes alone (``bpf_prog_info``'s
xlated image or an object's section) without building test_progs. The text follows
Linux 7.3 (the ``probe`` atomic prefix, load-acquire/store-release, ``gotox``, the
``BUG_ldx`` for sign-extending DW loads); tests/progs/test_disasm.py holds it equal,
byte for byte, to that tree's disasm.c and disasm_helpers.c compiled with gcc.

Invalid encodings print what a glibc-built test_progs prints, corners included:

- an ALU or jump op with no name (ALU ops 0xe0/0xf0, jump op 0xf0, a JCOND that is
  not may_goto, ...) reaches printf's ``%s`` as NULL, which glibc prints ``(null)``;
- the ``BUG_...`` lines have no ``"(XX) "`` prefix, yet disasm_insn still drops their
  first five characters (``BUG_ld_20`` becomes ``d_20``);
- disasm_insn formats into get_xlated_program_text's 64-byte buffer, so text longer
  than 63 characters would be cut there, before the cut at ``#`` (kept for fidelity:
  no 7.3 text is that long, the longest, a probe ``atomic64_cmpxchg``, has 62);
- an ld_imm64 in the last slot has no second half: the C code would read past the
  image, here (and in the test's oracle) the missing upper imm counts as 0.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["Insn", "decode", "insn_text", "program_text"]

# Instruction classes (BPF_CLASS), sizes (BPF_SIZE), modes (BPF_MODE), sources (BPF_SRC).
_LD, _LDX, _ST, _STX, _ALU, _JMP, _JMP32, _ALU64 = range(8)
_SIZE_DW = 0x18
_MODE_IMM, _MODE_ABS, _MODE_IND, _MODE_MEM = 0x00, 0x20, 0x40, 0x60
_MODE_MEMSX, _MODE_ATOMIC, _MODE_NOSPEC, _MODE_PROBE_ATOMIC = 0x80, 0xC0, 0xC0, 0xE0
_SRC_X = 0x08  # also BPF_TO_BE for BPF_END

# ALU and jump ops (BPF_OP).
_DIV, _MOD, _MOV, _NEG, _END = 0x30, 0x90, 0xB0, 0x80, 0xD0
_JA, _CALL, _EXIT, _JCOND = 0x00, 0x80, 0x90, 0xE0

# Atomic operations, in the imm of a BPF_ATOMIC store.
_ADD, _OR, _AND, _XOR = 0x00, 0x40, 0x50, 0xA0
_FETCH = 0x01
_XCHG = 0xE0 | _FETCH
_CMPXCHG = 0xF0 | _FETCH
_LOAD_ACQ, _STORE_REL = 0x100, 0x110

# src_reg values with a meaning.
_PSEUDO_MAP_FD, _PSEUDO_MAP_VALUE, _PSEUDO_BTF_ID = 1, 2, 3
_PSEUDO_MAP_IDX, _PSEUDO_MAP_IDX_VALUE = 5, 6
_PSEUDO_CALL, _PSEUDO_KFUNC_CALL = 1, 2
_MAY_GOTO = 0
# off values of BPF_ALU64 | BPF_MOV | BPF_X with a meaning.
_ADDR_SPACE_CAST, _ADDR_PERCPU = 1, -1

_LD_IMM64 = _LD | _MODE_IMM | _SIZE_DW  # 0x18, the only two-slot instruction

# get_xlated_program_text's buffer: vsnprintf keeps 63 characters and the NUL.
_BUF_SZ = 64

# What printf's "%s" makes of a NULL entry of disasm.c's string tables (glibc).
_NULL = "(null)"

_ALU_STR = (
    "+=", "-=", "*=", "/=", "|=", "&=", "<<=", ">>=",
    "neg", "%=", "^=", "=", "s>>=", "endian", _NULL, _NULL,
)
_ALU_SIGN_STR = {_DIV: "s/=", _MOD: "s%="}  # BPF_DIV/BPF_MOD with off == 1
_MOVSX_STR = {8: "(s8)", 16: "(s16)", 32: "(s32)"}  # BPF_MOV | BPF_X with these offs
_ATOMIC_ALU_STR = {_ADD: "add", _AND: "and", _OR: "or", _XOR: "xor"}
_LDST_STR = ("u32", "u16", "u8", "u64")  # by BPF_SIZE >> 3: W, H, B, DW
_LDSX_STR = ("s32", "s16", "s8")
_JMP_STR = (
    "jmp", "==", ">", ">=", "&", "!=", "s>", "s>=",
    "call", "exit", "<", "<=", "s<", "s<=", _NULL, _NULL,
)

# bpf_<name> for helper ids 0..__BPF_FUNC_MAX_ID-1: include/uapi/linux/bpf.h's
# ___BPF_FUNC_MAPPER in 7.3 (a list the kernel has declared frozen; kfuncs are new calls).
_HELPERS = (
    "unspec", "map_lookup_elem", "map_update_elem", "map_delete_elem", "probe_read",
    "ktime_get_ns", "trace_printk", "get_prandom_u32", "get_smp_processor_id", "skb_store_bytes",
    "l3_csum_replace", "l4_csum_replace", "tail_call", "clone_redirect", "get_current_pid_tgid",
    "get_current_uid_gid", "get_current_comm", "get_cgroup_classid", "skb_vlan_push",
    "skb_vlan_pop", "skb_get_tunnel_key", "skb_set_tunnel_key", "perf_event_read", "redirect",
    "get_route_realm", "perf_event_output", "skb_load_bytes", "get_stackid", "csum_diff",
    "skb_get_tunnel_opt", "skb_set_tunnel_opt", "skb_change_proto", "skb_change_type",
    "skb_under_cgroup", "get_hash_recalc", "get_current_task", "probe_write_user",
    "current_task_under_cgroup", "skb_change_tail", "skb_pull_data", "csum_update",
    "set_hash_invalid", "get_numa_node_id", "skb_change_head", "xdp_adjust_head", "probe_read_str",
    "get_socket_cookie", "get_socket_uid", "set_hash", "setsockopt", "skb_adjust_room",
    "redirect_map", "sk_redirect_map", "sock_map_update", "xdp_adjust_meta",
    "perf_event_read_value", "perf_prog_read_value", "getsockopt", "override_return",
    "sock_ops_cb_flags_set", "msg_redirect_map", "msg_apply_bytes", "msg_cork_bytes",
    "msg_pull_data", "bind", "xdp_adjust_tail", "skb_get_xfrm_state", "get_stack",
    "skb_load_bytes_relative", "fib_lookup", "sock_hash_update", "msg_redirect_hash",
    "sk_redirect_hash", "lwt_push_encap", "lwt_seg6_store_bytes", "lwt_seg6_adjust_srh",
    "lwt_seg6_action", "rc_repeat", "rc_keydown", "skb_cgroup_id", "get_current_cgroup_id",
    "get_local_storage", "sk_select_reuseport", "skb_ancestor_cgroup_id", "sk_lookup_tcp",
    "sk_lookup_udp", "sk_release", "map_push_elem", "map_pop_elem", "map_peek_elem",
    "msg_push_data", "msg_pop_data", "rc_pointer_rel", "spin_lock", "spin_unlock", "sk_fullsock",
    "tcp_sock", "skb_ecn_set_ce", "get_listener_sock", "skc_lookup_tcp", "tcp_check_syncookie",
    "sysctl_get_name", "sysctl_get_current_value", "sysctl_get_new_value", "sysctl_set_new_value",
    "strtol", "strtoul", "sk_storage_get", "sk_storage_delete", "send_signal", "tcp_gen_syncookie",
    "skb_output", "probe_read_user", "probe_read_kernel", "probe_read_user_str",
    "probe_read_kernel_str", "tcp_send_ack", "send_signal_thread", "jiffies64",
    "read_branch_records", "get_ns_current_pid_tgid", "xdp_output", "get_netns_cookie",
    "get_current_ancestor_cgroup_id", "sk_assign", "ktime_get_boot_ns", "seq_printf", "seq_write",
    "sk_cgroup_id", "sk_ancestor_cgroup_id", "ringbuf_output", "ringbuf_reserve", "ringbuf_submit",
    "ringbuf_discard", "ringbuf_query", "csum_level", "skc_to_tcp6_sock", "skc_to_tcp_sock",
    "skc_to_tcp_timewait_sock", "skc_to_tcp_request_sock", "skc_to_udp6_sock", "get_task_stack",
    "load_hdr_opt", "store_hdr_opt", "reserve_hdr_opt", "inode_storage_get",
    "inode_storage_delete", "d_path", "copy_from_user", "snprintf_btf", "seq_printf_btf",
    "skb_cgroup_classid", "redirect_neigh", "per_cpu_ptr", "this_cpu_ptr", "redirect_peer",
    "task_storage_get", "task_storage_delete", "get_current_task_btf", "bprm_opts_set",
    "ktime_get_coarse_ns", "ima_inode_hash", "sock_from_file", "check_mtu", "for_each_map_elem",
    "snprintf", "sys_bpf", "btf_find_by_name_kind", "sys_close", "timer_init",
    "timer_set_callback", "timer_start", "timer_cancel", "get_func_ip", "get_attach_cookie",
    "task_pt_regs", "get_branch_snapshot", "trace_vprintk", "skc_to_unix_sock",
    "kallsyms_lookup_name", "find_vma", "loop", "strncmp", "get_func_arg", "get_func_ret",
    "get_func_arg_cnt", "get_retval", "set_retval", "xdp_get_buff_len", "xdp_load_bytes",
    "xdp_store_bytes", "copy_from_user_task", "skb_set_tstamp", "ima_file_hash", "kptr_xchg",
    "map_lookup_percpu_elem", "skc_to_mptcp_sock", "dynptr_from_mem", "ringbuf_reserve_dynptr",
    "ringbuf_submit_dynptr", "ringbuf_discard_dynptr", "dynptr_read", "dynptr_write",
    "dynptr_data", "tcp_raw_gen_syncookie_ipv4", "tcp_raw_gen_syncookie_ipv6",
    "tcp_raw_check_syncookie_ipv4", "tcp_raw_check_syncookie_ipv6", "ktime_get_tai_ns",
    "user_ringbuf_drain", "cgrp_storage_get", "cgrp_storage_delete",
)


@dataclass(frozen=True)
class Insn:
    """One struct bpf_insn, fields decoded: off and imm signed, as the C printer sees them."""

    code: int  # u8
    dst: int  # dst_reg, 4 bits
    src: int  # src_reg, 4 bits
    off: int  # s16
    imm: int  # s32

    def __post_init__(self) -> None:
        # Out-of-range fields could print text no 8-byte instruction can produce.
        for name, value, lo, hi in (("code", self.code, 0, 0xFF), ("dst", self.dst, 0, 15),
                                    ("src", self.src, 0, 15),
                                    ("off", self.off, -(1 << 15), (1 << 15) - 1),
                                    ("imm", self.imm, -(1 << 31), (1 << 31) - 1)):
            if not lo <= value <= hi:
                raise ValueError(f"Insn.{name}={value} outside [{lo}, {hi}]")


_LE = struct.Struct("<BBhi")
_BE = struct.Struct(">BBhi")


def decode(raw: bytes, little_endian: bool = True) -> list[Insn]:
    """Split an instruction image (8 bytes per struct bpf_insn) into Insns.

    The register byte holds two bitfields, dst_reg declared first: a little-endian ABI
    puts dst in the low nibble, a big-endian one in the high nibble.
    """
    if len(raw) % 8:
        raise ValueError(f"{len(raw)} bytes is not a whole number of 8-byte instructions")
    layout = _LE if little_endian else _BE
    out = []
    for code, regs, off, imm in layout.iter_unpack(raw):
        lo, hi = regs & 0x0F, regs >> 4
        out.append(Insn(code, lo, hi, off, imm) if little_endian else Insn(code, hi, lo, off, imm))
    return out


def _call_name(insn: Insn) -> str:
    """__func_get_name with disasm_helpers.c's cb_call, for calls that are not pseudo calls."""
    if insn.src == 0 and 0 <= insn.imm < len(_HELPERS):
        return "bpf_" + _HELPERS[insn.imm]
    if insn.src == _PSEUDO_KFUNC_CALL:
        return "kernel-function"
    return "unknown"


def _alu(insn: Insn, cls: int) -> str:
    code, op, dst, src = insn.code, insn.code & 0xF0, insn.dst, insn.src
    r = "w" if cls == _ALU else "r"
    if op == _END:
        if cls == _ALU64:
            return f"({code:02x}) r{dst} = bswap{insn.imm} r{dst}"
        order = "be" if code & _SRC_X else "le"
        return f"({code:02x}) r{dst} = {order}{insn.imm} r{dst}"
    if op == _NEG:
        return f"({code:02x}) {r}{dst} = -{r}{dst}"
    if code == _ALU64 | _MOV | _SRC_X and insn.off == _ADDR_SPACE_CAST:
        imm = insn.imm & 0xFFFFFFFF
        return f"({code:02x}) r{dst} = addr_space_cast(r{src}, {imm >> 16}, {imm & 0xFFFF})"
    if code == _ALU64 | _MOV | _SRC_X and insn.off == _ADDR_PERCPU:
        return f"({code:02x}) r{dst} = &(void __percpu *)(r{src})"
    signed = op in _ALU_SIGN_STR and insn.off == 1  # sdiv/smod
    op_str = _ALU_SIGN_STR[op] if signed else _ALU_STR[op >> 4]
    if code & _SRC_X:
        cast = _MOVSX_STR.get(insn.off, "") if op == _MOV else ""
        return f"({code:02x}) {r}{dst} {op_str} {cast}{r}{src}"
    return f"({code:02x}) {r}{dst} {op_str} {insn.imm}"


def _stx(insn: Insn) -> str:
    code, mode, dst, src, off, imm = (insn.code, insn.code & 0xE0, insn.dst, insn.src,
                                      insn.off, insn.imm)
    size = _LDST_STR[(code & 0x18) >> 3]
    if mode == _MODE_MEM:
        return f"({code:02x}) *({size} *)(r{dst} {off:+d}) = r{src}"
    if mode not in (_MODE_ATOMIC, _MODE_PROBE_ATOMIC):
        return f"BUG_{code:02x}"
    probe = "probe " if mode == _MODE_PROBE_ATOMIC else ""
    bits = "64" if code & 0x18 == _SIZE_DW else ""
    if imm in _ATOMIC_ALU_STR:
        return (f"({code:02x}) {probe}lock *({size} *)(r{dst} {off:+d}) "
                f"{_ALU_STR[imm >> 4]} r{src}")
    if imm - _FETCH in _ATOMIC_ALU_STR:
        name = _ATOMIC_ALU_STR[imm - _FETCH]
        return (f"({code:02x}) {probe}r{src} = atomic{bits}_fetch_{name}"
                f"(({size} *)(r{dst} {off:+d}), r{src})")
    if imm == _CMPXCHG:
        return (f"({code:02x}) {probe}r0 = atomic{bits}_cmpxchg"
                f"(({size} *)(r{dst} {off:+d}), r0, r{src})")
    if imm == _XCHG:
        return (f"({code:02x}) {probe}r{src} = atomic{bits}_xchg"
                f"(({size} *)(r{dst} {off:+d}), r{src})")
    if imm == _LOAD_ACQ:
        return f"({code:02x}) {probe}r{dst} = load_acquire(({size} *)(r{src} {off:+d}))"
    if imm == _STORE_REL:
        return f"({code:02x}) {probe}store_release(({size} *)(r{dst} {off:+d}), r{src})"
    return f"BUG_{code:02x}"


def _ld(insns: list[Insn], i: int, allow_ptr_leaks: bool) -> str:
    insn = insns[i]
    code, mode = insn.code, insn.code & 0xE0
    size = _LDST_STR[(code & 0x18) >> 3]
    if mode == _MODE_ABS:
        return f"({code:02x}) r0 = *({size} *)skb[{insn.imm}]"
    if mode == _MODE_IND:
        return f"({code:02x}) r0 = *({size} *)skb[r{insn.src} + {insn.imm}]"
    if code != _LD_IMM64:
        return f"BUG_ld_{code:02x}"
    hi = insns[i + 1].imm & 0xFFFFFFFF if i + 1 < len(insns) else 0
    imm = hi << 32 | insn.imm & 0xFFFFFFFF
    if not allow_ptr_leaks and insn.src in (_PSEUDO_MAP_FD, _PSEUDO_MAP_VALUE, _PSEUDO_MAP_IDX,
                                            _PSEUDO_MAP_IDX_VALUE, _PSEUDO_BTF_ID):
        imm = 0
    return f"({code:02x}) r{insn.dst} = 0x{imm:x}"


def _jmp(insn: Insn, cls: int) -> str:
    code, dst, src, off = insn.code, insn.dst, insn.src, insn.off
    if code & 0xF0 == _CALL:
        if src == _PSEUDO_CALL:  # disasm_helpers.c's cb_call: the off the verifier saved
            return f"({code:02x}) call pc{off:+d}"
        return f"({code:02x}) call {_call_name(insn)}#{insn.imm}"
    if code == _JMP | _JA:
        return f"({code:02x}) goto pc{off:+d}"
    if code == _JMP | _JA | _SRC_X:
        return f"({code:02x}) gotox r{dst}"
    if code == _JMP | _JCOND and src == _MAY_GOTO:
        return f"({code:02x}) may_goto pc{off:+d}"
    if code == _JMP32 | _JA:
        return f"({code:02x}) gotol pc{insn.imm:+d}"
    if code == _JMP | _EXIT:
        return f"({code:02x}) exit"
    r = "w" if cls == _JMP32 else "r"
    op_str = _JMP_STR[code >> 4]
    if code & _SRC_X:
        return f"({code:02x}) if {r}{dst} {op_str} {r}{src} goto pc{off:+d}"
    return f"({code:02x}) if {r}{dst} {op_str} 0x{insn.imm & 0xFFFFFFFF:x} goto pc{off:+d}"


def _printer_text(insns: list[Insn], i: int, allow_ptr_leaks: bool) -> str:
    """What print_bpf_insn hands its cb_print for insns[i], "(XX) " prefix and all."""
    insn = insns[i]
    code, cls = insn.code, insn.code & 0x07
    if cls in (_ALU, _ALU64):
        return _alu(insn, cls)
    if cls == _STX:
        return _stx(insn)
    if cls == _ST:
        mode = code & 0xE0
        if mode == _MODE_MEM:
            size = _LDST_STR[(code & 0x18) >> 3]
            return f"({code:02x}) *({size} *)(r{insn.dst} {insn.off:+d}) = {insn.imm}"
        if mode == _MODE_NOSPEC:
            return f"({code:02x}) nospec"
        return f"BUG_st_{code:02x}"
    if cls == _LDX:
        mode, size = code & 0xE0, code & 0x18
        if mode not in (_MODE_MEM, _MODE_MEMSX) or (mode == _MODE_MEMSX and size == _SIZE_DW):
            return f"BUG_ldx_{code:02x}"
        kind = (_LDST_STR if mode == _MODE_MEM else _LDSX_STR)[size >> 3]
        return f"({code:02x}) r{insn.dst} = *({kind} *)(r{insn.src} {insn.off:+d})"
    if cls == _LD:
        return _ld(insns, i, allow_ptr_leaks)
    return _jmp(insn, cls)  # _JMP, _JMP32: the eight classes are all handled


def insn_text(insns: list[Insn], i: int, *, allow_ptr_leaks: bool = True) -> tuple[str, int]:
    """The text disasm_insn makes of insns[i], and how many slots that instruction takes.

    disasm_insn always passes allow_ptr_leaks=true (as a privileged test_progs sees
    xlated images); False zeroes map and BTF pointers of ld_imm64 the way the
    verifier's log does for unprivileged loaders.
    """
    text = _printer_text(insns, i, allow_ptr_leaks)[: _BUF_SZ - 1]
    end = len(text)
    if text[5:10] == "call " and "#" in text:
        end = text.rindex("#")
    return text[5:end], 2 if insns[i].code == _LD_IMM64 else 1


def program_text(raw: bytes, little_endian: bool = True) -> str:
    """get_xlated_program_text's output for an xlated image: "<index>: <text>\\n" each."""
    insns = decode(raw, little_endian)
    lines = []
    i = 0
    while i < len(insns):
        text, slots = insn_text(insns, i)
        lines.append(f"{i}: {text}\n")
        i += slots
    return "".join(lines)
