// SPDX-License-Identifier: GPL-2.0
/*
 * HID-BPF: struct_ops programs bound to a /dev/uhid device the agent creates
 * (harness/progs/hidtool.py), driven through __hid scenarios and read back
 * through hidraw. The device has two 8-byte input reports, IDs 1 and 2, so
 * every report is 9 bytes with the ID first.
 *
 * The centre piece arms a bpf_wq from hid_device_event with
 * bpf_wq_set_callback (the KF_IMPLICIT_ARGS kfunc); the callback runs in a
 * kworker, sleepable, and injects a second report with hid_bpf_input_report,
 * which only a sleepable context may call. Each program has its own
 * struct_ops map; the agent writes the device's hid_id into the map before
 * loading and attaches it.
 */
#include "harness_misc.h"

char _license[] SEC("license") = "GPL";

#define REPORT_SIZE 9

extern __u8 *hid_bpf_get_data(struct hid_bpf_ctx *ctx, unsigned int offset,
			      const size_t __sz) __weak __ksym;
extern struct hid_bpf_ctx *hid_bpf_allocate_context(unsigned int hid_id) __weak __ksym;
extern void hid_bpf_release_context(struct hid_bpf_ctx *ctx) __weak __ksym;
extern int hid_bpf_input_report(struct hid_bpf_ctx *ctx, enum hid_report_type type,
				__u8 *buf, const size_t buf__sz) __weak __ksym;

/* ---- 1. plain rewrite: the attach/inject/read-back path itself ---- */

SEC("struct_ops/hid_device_event")
__description("hid_device_event rewrites report 1 in place")
__success
__hid("send 01 2a 00 00 00 00 00 00 00; read 01 2a 2f 00 00 00 00 00 00;"
      "send 02 07 00 00 00 00 00 00 00; read 02 07 00 00 00 00 00 00 00")
int BPF_PROG(hid_rewrite, struct hid_bpf_ctx *hctx, enum hid_report_type type, __u64 source)
{
	__u8 *data = hid_bpf_get_data(hctx, 0, REPORT_SIZE);

	if (!data)
		return 0;
	if (data[0] == 1)
		data[2] = data[1] + 5;
	return 0;
}

SEC(".struct_ops.link")
struct hid_bpf_ops rewrite_ops = {
	.hid_device_event = (void *)hid_rewrite,
};

/* ---- 2. drop: a negative return swallows the event ---- */

SEC("struct_ops/hid_device_event")
__description("hid_device_event drops reports whose first payload byte is 0xff")
__success
__hid("send 01 ff 00 00 00 00 00 00 00; quiet 300;"
      "send 01 01 00 00 00 00 00 00 00; read 01 01 00 00 00 00 00 00 00")
int BPF_PROG(hid_drop, struct hid_bpf_ctx *hctx, enum hid_report_type type, __u64 source)
{
	__u8 *data = hid_bpf_get_data(hctx, 0, REPORT_SIZE);

	if (!data)
		return 0;
	if (data[0] == 1 && data[1] == 0xff)
		return -1;
	return 0;
}

SEC(".struct_ops.link")
struct hid_bpf_ops drop_ops = {
	.hid_device_event = (void *)hid_drop,
};

/* ---- 3. bpf_wq from hid_device_event: a sleepable callback injects a report ---- */

struct wq_slot {
	struct bpf_wq work;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4);
	__type(key, int);
	__type(value, struct wq_slot);
} hid_work SEC(".maps");

/* Reports the callback injected (read back by nobody but a debugger). */
__u32 injected;

/* The key is the device's hid_id: the callback needs it to get a context. */
static int inject_cb(void *map, int *key, void *value)
{
	__u8 report[REPORT_SIZE] = { 2, 3, 4, 5, 6, 7, 8, 9, 10 };
	struct hid_bpf_ctx *ctx;

	ctx = hid_bpf_allocate_context(*key);
	if (!ctx)
		return 0;
	if (!hid_bpf_input_report(ctx, HID_INPUT_REPORT, report, sizeof(report)))
		__sync_fetch_and_add(&injected, 1);
	hid_bpf_release_context(ctx);
	return 0;
}

static int arm_injection(int hid_id)
{
	struct wq_slot fresh = {}, *slot;

	if (bpf_map_update_elem(&hid_work, &hid_id, &fresh, 0))
		return -1;
	slot = bpf_map_lookup_elem(&hid_work, &hid_id);
	if (!slot)
		return -2;
	if (bpf_wq_init(&slot->work, &hid_work, 0))
		return -3;
	if (bpf_wq_set_callback(&slot->work, inject_cb, 0))
		return -4;
	if (bpf_wq_start(&slot->work, 0))
		return -5;
	return 0;
}

SEC("struct_ops/hid_device_event")
__description("bpf_wq_set_callback from hid_device_event: the callback injects report 2")
__success
__hid("send 01 2a 00 00 00 00 00 00 00; read 01 2f 00 00 00 00 00 00 00;"
      "read 02 03 04 05 06 07 08 09 0a")
int BPF_PROG(hid_wq_inject, struct hid_bpf_ctx *hctx, enum hid_report_type type, __u64 source)
{
	__u8 *data = hid_bpf_get_data(hctx, 0, REPORT_SIZE);
	int err;

	if (!data || data[0] != 1)
		return 0;
	err = arm_injection(hctx->hid->id);
	if (err)
		return err;
	data[1] += 5;
	return 0;
}

SEC(".struct_ops.link")
struct hid_bpf_ops wq_inject_ops = {
	.hid_device_event = (void *)hid_wq_inject,
};

/* ---- 4. the reason for the wq: sleepable kfuncs are refused in the event hook ---- */

SEC("struct_ops/hid_device_event")
__description("hid_bpf_allocate_context straight from hid_device_event is refused")
__failure
__msg("program must be sleepable to call sleepable kfunc hid_bpf_allocate_context")
int BPF_PROG(hid_sleepable_in_event, struct hid_bpf_ctx *hctx, enum hid_report_type type,
	     __u64 source)
{
	struct hid_bpf_ctx *own = hid_bpf_allocate_context(hctx->hid->id);

	if (own)
		hid_bpf_release_context(own);
	return 0;
}

SEC(".struct_ops.link")
struct hid_bpf_ops sleepable_in_event_ops = {
	.hid_device_event = (void *)hid_sleepable_in_event,
};
