// SPDX-License-Identifier: GPL-2.0
/*
 * A program that makes the kernel splat: bpf_testmod's bpf_kfunc_call_test_offset()
 * is a bare WARN_ON_ONCE(1) (upstream only calls it in programs the verifier must
 * reject). Booted with panic_on_warn=1 the guest panics under it. The test of crash
 * isolation (tests/progs/test_isolation.py) runs it between programs that pass.
 */
#define BPF_NO_KFUNC_PROTOTYPES
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include "bpf_misc.h"

struct prog_test_ref_kfunc;
extern struct prog_test_ref_kfunc *bpf_kfunc_call_test_acquire(unsigned long *sp) __ksym;
extern void bpf_kfunc_call_test_release(struct prog_test_ref_kfunc *p) __ksym;
extern void bpf_kfunc_call_test_offset(struct prog_test_ref_kfunc *p) __ksym;

char _license[] SEC("license") = "GPL";

SEC("syscall")
__success __retval(7)
int before_the_warning(void *ctx)
{
	return 7;
}

SEC("syscall")
__success __retval(0)
int warns(void *ctx)
{
	unsigned long scalar = 0;
	struct prog_test_ref_kfunc *p = bpf_kfunc_call_test_acquire(&scalar);

	if (!p)
		return 1;
	bpf_kfunc_call_test_offset(p);
	bpf_kfunc_call_test_release(p);
	return 0;
}

SEC("syscall")
__success __retval(5)
int after_the_warning(void *ctx)
{
	return 5;
}
