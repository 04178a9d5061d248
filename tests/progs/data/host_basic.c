// SPDX-License-Identifier: GPL-2.0
/*
 * Programs that load on the host kernel (6.18, legacy *_impl kfuncs): they
 * exercise the agent and the judge without a 7.3 guest.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include "bpf_misc.h"

char _license[] SEC("license") = "GPL";

__u32 counter;

SEC("syscall")
__success __retval(42)
int host_retval(void *ctx)
{
	return 42;
}

SEC("tc")
__success __retval(7)
int host_tc_retval(struct __sk_buff *skb)
{
	return 7;
}

SEC("syscall")
__failure __msg("R0 !read_ok")
__naked int host_reject(void)
{
	asm volatile ("exit;" ::: __clobber_all);
}

SEC("syscall")
__failure __log_level(2) __msg("{{[0-9]+}}: (b7) r0 = 1") __not_msg("nonexistent")
__naked int host_regex_log(void)
{
	asm volatile ("r0 = 1; r1 = *(u64 *)(r10 + 8); exit;" ::: __clobber_all);
}

SEC("syscall")
__success __retval(1)
__stdout("harness host {{[0-9]+}}")
int host_stream(void *ctx)
{
	__u64 args[1] = { 5 };
	static const char fmt[] = "harness host %d\n";

	int ret = bpf_stream_vprintk_impl(BPF_STDOUT, fmt, args, sizeof(args), NULL);

	return ret ? ret : 1;
}

SEC("syscall")
__auxiliary
int host_counter(void *ctx)
{
	return counter;
}

SEC("syscall")
__success __retval(0)
__attribute__((btf_decl_tag("comment:" XSTR(__COUNTER__) ":harness_then_run=host_counter,3")))
int host_bump(void *ctx)
{
	counter += 3;
	return 0;
}

SEC("syscall")
__success __retval(99)
int host_wrong_retval(void *ctx)
{
	return 98;
}
