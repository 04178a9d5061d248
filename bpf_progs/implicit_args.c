// SPDX-License-Identifier: GPL-2.0
/*
 * bpf_testmod's KF_IMPLICIT_ARGS kfuncs. The public prototype hides the
 * struct bpf_prog_aux * argument; the verifier supplies it. The generated
 * <name>_impl twin must not be callable; a legacy <name>_impl declared by the
 * kernel itself stays callable. Results go through 32-bit arithmetic so that
 * BPF_F_TEST_RND_HI32 (the @rnd_hi32 run) has upper halves to poison.
 */
#define BPF_NO_KFUNC_PROTOTYPES
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include "bpf_misc.h"

extern int bpf_kfunc_implicit_arg(int a) __weak __ksym;
extern int bpf_kfunc_implicit_arg_impl(int a, struct bpf_prog_aux *aux) __weak __ksym;
extern int bpf_kfunc_implicit_arg_legacy(int a, int b) __weak __ksym;
extern int bpf_kfunc_implicit_arg_legacy_impl(int a, int b, struct bpf_prog_aux *aux) __weak __ksym;

char _license[] SEC("license") = "GPL";

volatile __u32 seed = 3;

SEC("syscall")
__description("implicit-arg kfunc through its public prototype")
__success __retval(9)
int implicit_plain(void *ctx)
{
	return bpf_kfunc_implicit_arg(9);
}

SEC("syscall")
__description("implicit-arg kfunc result in 32-bit arithmetic")
__success __retval(12)
int implicit_alu32(void *ctx)
{
	__u32 r = (__u32)bpf_kfunc_implicit_arg(seed * 3);

	return (int)(r + seed);
}

SEC("syscall")
__description("the generated _impl twin is not callable")
__failure __msg("cannot find address for kernel function bpf_kfunc_implicit_arg_impl")
int implicit_generated_impl(void *ctx)
{
	return bpf_kfunc_implicit_arg_impl(9, NULL);
}

SEC("syscall")
__description("legacy pair: the new name")
__success __retval(5)
int implicit_legacy_new(void *ctx)
{
	return bpf_kfunc_implicit_arg_legacy(2, 3);
}

SEC("syscall")
__description("legacy pair: the kernel's own _impl")
__success __retval(9)
int implicit_legacy_impl(void *ctx)
{
	return bpf_kfunc_implicit_arg_legacy_impl(4, 5, NULL);
}
