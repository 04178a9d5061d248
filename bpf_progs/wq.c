// SPDX-License-Identifier: GPL-2.0
/* bpf_wq: init, set_callback, start; callbacks must really run (checked with __then_run). */
#include "harness_misc.h"

char _license[] SEC("license") = "GPL";

struct slot {
	int owner;
	struct bpf_wq wq;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, int);
	__type(value, struct slot);
} slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8);
	__type(key, int);
	__type(value, struct slot);
} hslots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, int);
	__type(value, struct slot);
} other SEC(".maps");

/* Bit n set: the callback for key n ran. */
__u32 done;
char scratch[16];

/* Only plain work: fine from any context. */
static int cb_plain(void *map, int *key, void *value)
{
	struct slot *s = value;

	if (s->owner == *key)
		__sync_fetch_and_or(&done, 1u << *key);
	return 0;
}

/* Calls a sleepable kfunc: only allowed because wq callbacks run in process context. */
static int cb_sleepable(void *map, int *key, void *value)
{
	/* a NULL user pointer faults politely; what matters is that the call verifies */
	bpf_copy_from_user_str(scratch, sizeof(scratch), (void *)0, 0);
	__sync_fetch_and_or(&done, 1u << *key);
	return 0;
}

static int arm(void *map, int key, harness_wq_cb_t cb)
{
	struct slot fresh = { .owner = key }, *s;

	if (map == (void *)&hslots && bpf_map_update_elem(map, &key, &fresh, 0))
		return 1;
	s = bpf_map_lookup_elem(map, &key);
	if (!s)
		return 2;
	s->owner = key;
	if (bpf_wq_init(&s->wq, map, 0))
		return 3;
	if (bpf_wq_set_callback(&s->wq, cb, 0))
		return 4;
	if (bpf_wq_start(&s->wq, 0))
		return 5;
	return 0;
}

SEC("syscall")
__auxiliary
int wq_done(void *ctx)
{
	return done;
}

SEC("tc")
__description("wq from a non-sleepable program, plain callback, array map")
__success __retval(0) __then_run(wq_done, 1)
int wq_tc_plain(struct __sk_buff *skb)
{
	return arm(&slots, 0, cb_plain);
}

SEC("tc")
__description("wq from a non-sleepable program, sleepable callback, hash map")
__success __retval(0) __then_run(wq_done, 2)
int wq_tc_sleepable_cb(struct __sk_buff *skb)
{
	return arm(&hslots, 1, cb_sleepable);
}

SEC("syscall")
__description("wq from a sleepable program, sleepable callback")
__success __retval(0) __then_run(wq_done, 4)
int wq_syscall_sleepable_cb(void *ctx)
{
	return arm(&slots, 2, cb_sleepable);
}

SEC("tc")
__description("bpf_wq_init with the wq of one map and another map")
__failure __log_level(2)
__msg(": (85) call bpf_wq_init#")
__msg("doesn't match map pointer in R2 map_uid=0")
int wq_init_wrong_map(struct __sk_buff *skb)
{
	int key = 0;
	struct slot *s = bpf_map_lookup_elem(&slots, &key);

	if (!s)
		return 0;
	return bpf_wq_init(&s->wq, &other, 0);
}

SEC("tc")
__description("bpf_wq_init with a stack pointer where a map belongs")
__failure __log_level(2)
__msg(": (85) call bpf_wq_init#")
__msg("pointer in R2 isn't map pointer")
int wq_init_not_a_map(struct __sk_buff *skb)
{
	int key = 0;
	struct slot *s = bpf_map_lookup_elem(&slots, &key);

	if (!s)
		return 0;
	return bpf_wq_init(&s->wq, &key, 0);
}

SEC("tc")
__description("bpf_wq_set_callback on a pointer that is not a map value")
__failure
__msg("R1 doesn't point to a map value")
int wq_callback_not_map_value(struct __sk_buff *skb)
{
	struct bpf_wq local = {};

	return bpf_wq_set_callback(&local, cb_plain, 0);
}
