/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared bits of the harness's own BPF programs.
 *
 * The kfuncs are declared here with the prototypes BPF programs are meant to
 * see (implicit arguments hidden), and vmlinux.h's generated declarations are
 * switched off: a kernel whose BTF lost the implicit-argument rewrite must
 * still let these programs compile, so that the failure shows up where it
 * matters, in libbpf and the verifier on the target.
 *
 * Two annotations extend bpf_misc.h's scheme; test_loader ignores them:
 *   __then_run(prog, val)  after the test run, run the (auxiliary) program
 *                          prog until it returns val (asynchronous work done)
 *   __hid(scenario)        drive a /dev/uhid device through the scenario
 *                          after loading and attaching (see hidtool.py)
 */
#ifndef HARNESS_MISC_H
#define HARNESS_MISC_H

#define BPF_NO_KFUNC_PROTOTYPES
#include <vmlinux.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "bpf_misc.h"

#define __then_run(prog, val) \
	__attribute__((btf_decl_tag("comment:" XSTR(__COUNTER__) ":harness_then_run=" #prog "," XSTR(val))))
#define __hid(scenario) \
	__attribute__((btf_decl_tag("comment:" XSTR(__COUNTER__) ":harness_hid=" scenario)))

typedef int (*harness_wq_cb_t)(void *map, int *key, void *value);
typedef int (*harness_tw_cb_t)(struct bpf_map *map, void *key, void *value);

extern int bpf_wq_init(struct bpf_wq *wq, void *p__map, unsigned int flags) __weak __ksym;
extern int bpf_wq_start(struct bpf_wq *wq, unsigned int flags) __weak __ksym;
extern int bpf_wq_set_callback(struct bpf_wq *wq, harness_wq_cb_t callback_fn,
			       unsigned int flags) __weak __ksym;

extern int bpf_task_work_schedule_signal(struct task_struct *task, struct bpf_task_work *tw,
					 void *map__map, harness_tw_cb_t callback) __weak __ksym;
extern int bpf_task_work_schedule_resume(struct task_struct *task, struct bpf_task_work *tw,
					 void *map__map, harness_tw_cb_t callback) __weak __ksym;

extern int bpf_stream_vprintk(int stream_id, const char *fmt__str, const void *args,
			      __u32 len__sz) __weak __ksym;
extern int bpf_stream_print_stack(int stream_id) __weak __ksym;

extern int bpf_copy_from_user_str(void *dst, __u32 dst__sz, const void *unsafe_ptr__ign,
				  __u64 flags) __weak __ksym;

#endif
