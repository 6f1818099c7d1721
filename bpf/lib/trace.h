/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trace.h - trace notifications (packet seen at an observation point) and
 * monitor aggregation: which of them are worth emitting.
 */
#pragma once

#include "common.h"
#include "events.h"

/* Observation points: the subtype of a trace notification. */
#define TRACE_TO_LXC		0
#define TRACE_TO_PROXY		1
#define TRACE_TO_HOST		2
#define TRACE_TO_STACK		3
#define TRACE_TO_OVERLAY	4
#define TRACE_FROM_LXC		5
#define TRACE_FROM_PROXY	6
#define TRACE_FROM_HOST		7
#define TRACE_FROM_STACK	8
#define TRACE_FROM_OVERLAY	9
#define TRACE_FROM_NETWORK	10
#define TRACE_TO_NETWORK	11

/* Trace reasons: the connection tracking state of the packet. */
#define TRACE_REASON_POLICY		0	/* new connection */
#define TRACE_REASON_CT_ESTABLISHED	1
#define TRACE_REASON_CT_REPLY		2
#define TRACE_REASON_CT_RELATED		3
#define TRACE_REASON_UNKNOWN		5

/* Monitor aggregation levels (the MONITOR_AGGREGATION global). */
#define TRACE_AGGREGATE_NONE		0	/* every packet at every point */
#define TRACE_AGGREGATE_RX		1	/* no FROM_* points */
#define TRACE_AGGREGATE_ACTIVE_CT	3	/* TO_* only when conntrack says so */

/* Layout version of struct trace_notify as emitted here. */
#define NOTIFY_TRACE_VER	1

/*
 * struct trace_notify - one packet at an observation point
 *
 * Cilium's layout (version 1 of ours), 48 bytes before the payload. The
 * IPv4 half of the orig_ip union is followed by the 16 bits this datapath
 * uses for @rev_nat (Cilium leaves them zero):
 *
 *   offset 32  orig_ip4  address before translation (0 today)
 *   offset 36  rev_nat   reverse-NAT index (network order, as in
 *                        lb4_service.rev_nat_index) of the service
 *                        frontend a translated request was sent to; 0 for
 *                        replies, untranslated packets and points before
 *                        the translation
 *   offset 38  zero up to offset 48 (the IPv6 half of the union is unused:
 *              this datapath is IPv4 only)
 */
struct trace_notify {
	NOTIFY_CAPTURE_HDR
	__u32	src_label;
	__u32	dst_label;
	__u16	dst_id;
	__u8	reason;
	__u8	flags;
	__u32	ifindex;
	union {
		struct {
			__be32	orig_ip4;
			__be16	rev_nat;
			__u16	orig_pad1;
			__u32	orig_pad2;
			__u32	orig_pad3;
		};
		__u8	orig_ip6[16];
	};
};

struct trace_record {
	struct trace_notify	msg;
	__u8			payload[TRACE_PAYLOAD_LEN];
};

/**
 * struct trace_ctx - what the caller knows about the traced packet
 * @reason: TRACE_REASON_* (connection tracking state)
 * @monitor: conntrack asked for this packet to be reported
 *           (new connection, new TCP flag or report interval elapsed)
 * @rev_nat: reverse-NAT index (network order) of the service frontend the
 *           packet's connection was translated from, 0 for none; reported
 *           in trace_notify.rev_nat
 */
struct trace_ctx {
	__u8	reason;
	__u8	monitor;
	__be16	rev_nat;
};

/*
 * skb->cb[] slot in which a pod's program hands a locally delivered
 * request's reverse-NAT index to the destination's handle_policy, whose
 * to-endpoint trace reports it. Tagged in the upper half, as CB_NODEPORT
 * is, so leftover cb[] content is never taken for one.
 */
#define CB_TRACE_REV_NAT	2
#define TRACE_REV_NAT_CB_TAG	0x52560000
#define TRACE_REV_NAT_CB_MASK	0xffff0000

/* Hand @rev_nat (network order, 0 for none) to the next handle_policy. */
static __always_inline void trace_rev_nat_cb_set(struct __sk_buff *ctx,
						 __be16 rev_nat)
{
	ctx->cb[CB_TRACE_REV_NAT] = TRACE_REV_NAT_CB_TAG | rev_nat;
}

/* The reverse-NAT index the sender handed over, 0 for none; clears it. */
static __always_inline __be16 trace_rev_nat_cb_take(struct __sk_buff *ctx)
{
	__u32 value = ctx->cb[CB_TRACE_REV_NAT];

	ctx->cb[CB_TRACE_REV_NAT] = 0;
	if ((value & TRACE_REV_NAT_CB_MASK) != TRACE_REV_NAT_CB_TAG)
		return 0;
	return (__be16)value;
}

static __always_inline bool trace_is_from_point(__u8 obs_point)
{
	return obs_point >= TRACE_FROM_LXC && obs_point <= TRACE_FROM_NETWORK;
}

/**
 * trace_wanted - apply monitor aggregation to one observation
 * @aggregation: the MONITOR_AGGREGATION level
 * @obs_point: TRACE_* observation point
 * @tctx: packet state; may be NULL for points before conntrack
 */
static __always_inline bool trace_wanted(__u32 aggregation, __u8 obs_point,
					 const struct trace_ctx *tctx)
{
	if (aggregation < TRACE_AGGREGATE_RX)
		return true;
	if (trace_is_from_point(obs_point))
		return false;
	if (aggregation >= TRACE_AGGREGATE_ACTIVE_CT)
		return tctx && tctx->monitor;
	return true;
}

/**
 * send_trace_notify - report a packet at an observation point
 * @ctx: packet context
 * @aggregation: the MONITOR_AGGREGATION level
 * @obs_point: TRACE_* observation point
 * @source: endpoint id of the reporting program
 * @src_label: source security identity
 * @dst_label: destination security identity (0 when unknown)
 * @dst_id: destination endpoint id (0 when not a local endpoint)
 * @ifindex: interface the packet goes to (0 when not known)
 * @tctx: packet state; may be NULL for points before conntrack
 */
static __always_inline void
send_trace_notify(struct __sk_buff *ctx, __u32 aggregation, __u8 obs_point,
		  __u16 source, __u32 src_label, __u32 dst_label, __u16 dst_id,
		  __u32 ifindex, const struct trace_ctx *tctx)
{
	struct trace_record *rec;

	if (!trace_wanted(aggregation, obs_point, tctx))
		return;

	rec = bpf_ringbuf_reserve(&cilium_events, sizeof(*rec), 0);
	if (!rec)
		return;

	rec->msg.type = CILIUM_NOTIFY_TRACE;
	rec->msg.subtype = obs_point;
	rec->msg.source = source;
	rec->msg.hash = bpf_get_hash_recalc(ctx);
	rec->msg.len_orig = ctx->len;
	rec->msg.version = NOTIFY_TRACE_VER;
	rec->msg.src_label = src_label;
	rec->msg.dst_label = dst_label;
	rec->msg.dst_id = dst_id;
	rec->msg.reason = tctx ? tctx->reason : TRACE_REASON_UNKNOWN;
	rec->msg.flags = 0;
	rec->msg.ifindex = ifindex;
	rec->msg.orig_ip4 = 0;
	rec->msg.rev_nat = tctx ? tctx->rev_nat : 0;
	rec->msg.orig_pad1 = 0;
	rec->msg.orig_pad2 = 0;
	rec->msg.orig_pad3 = 0;
	rec->msg.len_cap = notify_capture(ctx, rec->payload);
	events_submit(rec);
}
