// SPDX-License-Identifier: GPL-2.0
/* A program test_loader expects to load, which the verifier rejects. */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include "bpf_misc.h"

char _license[] SEC("license") = "GPL";

SEC("syscall")
__success __retval(0)
__naked int exits_without_r0(void)
{
	asm volatile ("exit;" ::: __clobber_all);
}

SEC("syscall")
__success __retval(3)
int returns_three(void *ctx)
{
	return 3;
}
