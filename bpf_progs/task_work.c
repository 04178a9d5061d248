// SPDX-License-Identifier: GPL-2.0
/* bpf_task_work_schedule_signal/_resume: callbacks run on the way back to user space. */
#include "harness_misc.h"

char _license[] SEC("license") = "GPL";

struct job {
	int tag;
	struct bpf_task_work tw;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, int);
	__type(value, struct job);
} jobs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 2);
	__type(key, int);
	__type(value, struct job);
} hjobs SEC(".maps");

/* Bit 0: signal-mode callback ran, bit 1: resume-mode callback ran. */
__u32 seen;

static int on_signal(struct bpf_map *map, void *key, void *value)
{
	struct job *j = value;

	if (j->tag == 0x51)
		__sync_fetch_and_or(&seen, 1);
	return 0;
}

static int on_resume(struct bpf_map *map, void *key, void *value)
{
	struct job *j = value;

	if (j->tag == 0x52)
		__sync_fetch_and_or(&seen, 2);
	return 0;
}

SEC("syscall")
__auxiliary
int tw_seen(void *ctx)
{
	return seen;
}

SEC("syscall")
__description("task_work with TWA_SIGNAL on the current task")
__success __retval(0) __then_run(tw_seen, 1)
int tw_signal(void *ctx)
{
	int key = 0;
	struct job *j = bpf_map_lookup_elem(&jobs, &key);

	if (!j)
		return 1;
	j->tag = 0x51;
	return bpf_task_work_schedule_signal(bpf_get_current_task_btf(), &j->tw, &jobs, on_signal);
}

SEC("syscall")
__description("task_work with TWA_RESUME on the current task, hash map without prealloc")
__success __retval(0) __then_run(tw_seen, 2)
int tw_resume(void *ctx)
{
	struct job fresh = { .tag = 0x52 }, *j;
	int key = 1;

	if (bpf_map_update_elem(&hjobs, &key, &fresh, 0))
		return 1;
	j = bpf_map_lookup_elem(&hjobs, &key);
	if (!j)
		return 2;
	return bpf_task_work_schedule_resume(bpf_get_current_task_btf(), &j->tw, &hjobs, on_resume);
}

SEC("syscall")
__description("task_work from one map, map argument another")
__failure __msg("doesn't match map pointer in R3")
int tw_wrong_map(void *ctx)
{
	int key = 0;
	struct job *j = bpf_map_lookup_elem(&jobs, &key);

	if (!j)
		return 0;
	return bpf_task_work_schedule_signal(bpf_get_current_task_btf(), &j->tw, &hjobs, on_signal);
}

SEC("syscall")
__description("task_work living on the stack")
__failure __msg("R2 doesn't point to a map value")
int tw_on_stack(void *ctx)
{
	struct bpf_task_work tw = {};

	return bpf_task_work_schedule_resume(bpf_get_current_task_btf(), &tw, &jobs, on_resume);
}

SEC("syscall")
__description("task_work with a NULL work item")
__failure __msg("Possibly NULL pointer passed to trusted R2")
int tw_null(void *ctx)
{
	return bpf_task_work_schedule_signal(bpf_get_current_task_btf(), NULL, &jobs, on_signal);
}
