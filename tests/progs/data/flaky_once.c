// SPDX-License-Identifier: GPL-2.0
/*
 * A program that fails on its first run and passes on the second: its counter lives
 * in a map pinned by name in bpffs, so it outlives the object between two loads. The
 * test of the suite's retry (tests/progs/test_lists_retry.py) unpins it before and after.
 */
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include "bpf_misc.h"

char _license[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} harness_flaky_once SEC(".maps");

SEC("syscall")
__success __retval(1)
int flaky_second_try(void *ctx)
{
	__u32 key = 0;
	__u64 *runs = bpf_map_lookup_elem(&harness_flaky_once, &key);

	if (!runs)
		return -1;
	*runs += 1;
	return *runs == 2;
}

SEC("syscall")
__success __retval(3)
int always_wrong(void *ctx)
{
	return 4;
}
