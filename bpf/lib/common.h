/* SPDX-License-Identifier: Apache-2.0 */
/*
 * common.h - base definitions shared by every datapath object: kernel
 * headers, tc verdicts, reserved identities, skb control-buffer slots and
 * packet-access helpers.
 */
#pragma once

#include <stdbool.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif

/* Reserved security identities (same numbers as Cilium). */
#define HOST_ID		1
#define WORLD_ID	2
/* Host traffic is encapsulated as remote-node: LOCAL_NODE_ID == REMOTE_NODE_ID. */
#define REMOTE_NODE_ID	6

/*
 * skb->cb[] slots carried across a tail call. The sender of a local
 * delivery stores the source identity here for the receiver's policy
 * program. Slot 1 is CB_NODEPORT (lib/lb4.h), slot 2 CB_TRACE_REV_NAT
 * (lib/trace.h); a new slot takes the next free number.
 */
#define CB_SRC_LABEL	0

/* Identifiers of the source files that emit drop notifications. */
enum source_file {
	SOURCE_FILE_UNKNOWN = 0,
	SOURCE_FILE_BPF_HOST = 1,
	SOURCE_FILE_BPF_LXC = 2,
	SOURCE_FILE_BPF_OVERLAY = 3,
};

#define NSEC_PER_SEC	1000000000ULL

/**
 * ctx_pull - make the first @len bytes of the packet directly accessible
 * @ctx: packet context
 * @len: number of linear bytes needed from the start of the packet
 *
 * Returns true when skb->data + @len is within skb->data_end, pulling
 * non-linear data into the linear area if needed.
 */
static __always_inline bool ctx_pull(struct __sk_buff *ctx, __u32 len)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;

	if (data + len <= data_end)
		return true;
	if (len > ctx->len)
		return false;
	if (bpf_skb_pull_data(ctx, len) < 0)
		return false;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	return data + len <= data_end;
}

/**
 * bpf_now_sec - CLOCK_MONOTONIC time in whole seconds
 *
 * The coarse clock is CLOCK_MONOTONIC as of the last timer tick: whole
 * seconds are what lifetimes need, and it costs no clock-source read (a
 * TSC read is slow under virtualisation, and every conntrack lookup
 * takes the time). User space compares these values with
 * clock_gettime(CLOCK_MONOTONIC).
 */
static __always_inline __u32 bpf_now_sec(void)
{
	return (__u32)(bpf_ktime_get_coarse_ns() / NSEC_PER_SEC);
}
