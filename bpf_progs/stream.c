// SPDX-License-Identifier: GPL-2.0
/* BPF streams: bpf_stream_vprintk output read back from stdout/stderr, and a stack dump. */
#include "harness_misc.h"

char _license[] SEC("license") = "GPL";

SEC("syscall")
__description("one formatted line on stdout")
__success __retval(0)
__stdout("harness says 42 and 0x2a")
int stream_stdout_line(void *ctx)
{
	bpf_stream_printk(BPF_STDOUT, "harness says %d and 0x%x\n", 42, 42);
	return 0;
}

SEC("syscall")
__description("consecutive lines on stderr, with a regex part")
__success __retval(0)
__stderr("first {{[0-9]+}}")
__stderr("second line")
__stderr("...")
__stderr("last {{[a-z]+}}")
int stream_stderr_lines(void *ctx)
{
	bpf_stream_printk(BPF_STDERR, "first %d\n", 1);
	bpf_stream_printk(BPF_STDERR, "second line\n");
	bpf_stream_printk(BPF_STDERR, "filler\n");
	bpf_stream_printk(BPF_STDERR, "last %s\n", "word");
	return 0;
}

SEC("syscall")
__description("stdout and stderr kept apart")
__success __retval(0)
__stdout("to stdout")
__stderr("to stderr")
int stream_both(void *ctx)
{
	bpf_stream_printk(BPF_STDERR, "to stderr\n");
	bpf_stream_printk(BPF_STDOUT, "to stdout\n");
	return 0;
}

SEC("syscall")
__description("bpf_stream_print_stack on stderr")
__arch_x86_64 __arch_arm64
__success __retval(0)
__stderr("CPU: {{[0-9]+}} UID: 0 PID: {{[0-9]+}} Comm: {{.*}}")
__stderr("Call trace:")
int stream_stack(void *ctx)
{
	return bpf_stream_print_stack(BPF_STDERR);
}

char not_const[8];

/* fmt__str wants a string in a read-only map; .bss is writable. */
SEC("syscall")
__description("format string in a writable map")
__failure __msg("R2 does not point to a readonly map")
int stream_fmt_not_const(void *ctx)
{
	__u64 args[1] = { 1 };

	return bpf_stream_vprintk(BPF_STDOUT, not_const, args, sizeof(args));
}
