// SPDX-License-Identifier: GPL-2.0
/*
 * __xlated expectations, one right and one wrong, for programs whose translated code
 * is the code written (no helper or map the verifier would rewrite), so they read the
 * same on the host kernel and on the guests (tests/progs/test_xlated.py).
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include "bpf_misc.h"

char _license[] SEC("license") = "GPL";

SEC("syscall")
__success __retval(3)
__xlated("0: r0 = 1")
__xlated("1: r0 += 2")
__xlated("2: exit")
__naked int xlated_as_written(void)
{
	asm volatile ("r0 = 1; r0 += 2; exit;" ::: __clobber_all);
}

SEC("syscall")
__success __retval(3)
__xlated("0: r0 = 1")
__xlated("1: r0 -= 2")
__naked int xlated_expects_other_code(void)
{
	asm volatile ("r0 = 1; r0 += 2; exit;" ::: __clobber_all);
}
