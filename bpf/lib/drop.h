/* SPDX-License-Identifier: Apache-2.0 */
/*
 * drop.h - drop codes and the drop path: count the drop in cilium_metrics,
 * emit a drop notification to cilium_events and return TC_ACT_SHOT.
 *
 * Internal functions return the negative DROP_* value; metrics and
 * notifications carry the positive number (Cilium's numbering).
 */
#pragma once

#include "common.h"
#include "events.h"
#include "metrics.h"

#define DROP_INVALID_SIP	-132
#define DROP_POLICY		-133
#define DROP_INVALID		-134
#define DROP_CT_INVALID_HDR	-135
#define DROP_UNKNOWN_L3		-139
#define DROP_MISSED_TAIL_CALL	-140
#define DROP_WRITE_ERROR	-141
#define DROP_NO_TUNNEL_KEY	-147
#define DROP_CSUM_L3		-153
#define DROP_CSUM_L4		-154
#define DROP_CT_CREATE_FAILED	-155
#define DROP_FRAG_NOSUPPORT	-157
#define DROP_NO_SERVICE		-158
#define DROP_NO_TUNNEL_ENDPOINT	-160
#define DROP_INVALID_IDENTITY	-171
#define DROP_POLICY_DENY	-181
#define DROP_TTL_EXCEEDED	-196

/* Layout version of struct drop_notify as emitted here. */
#define NOTIFY_DROP_VER		1

struct drop_notify {
	NOTIFY_CAPTURE_HDR
	__u32	src_label;
	__u32	dst_label;
	__u32	dst_id;
	__u16	line;
	__u8	file;
	__s8	ext_error;
	__u32	ifindex;
};

struct drop_record {
	struct drop_notify	msg;
	__u8			payload[TRACE_PAYLOAD_LEN];
};

/**
 * IS_DROP - true when @ret is one of the negative DROP_* codes
 */
#define IS_DROP(ret)	((ret) < 0)

/**
 * __send_drop_notify - account and report a dropped packet
 * @ctx: packet context
 * @source: endpoint id of the program that drops
 * @src_label: source security identity (0 when unknown)
 * @dst_label: destination security identity (0 when unknown)
 * @dst_id: destination endpoint id (0 when unknown)
 * @reason: negative DROP_* code
 * @dir: METRIC_INGRESS or METRIC_EGRESS
 * @file: enum source_file of the caller
 * @line: source line of the caller
 *
 * Returns TC_ACT_SHOT so callers can "return send_drop_notify(...)".
 */
static __always_inline int
__send_drop_notify(struct __sk_buff *ctx, __u16 source, __u32 src_label,
		   __u32 dst_label, __u32 dst_id, int reason, __u8 dir,
		   __u8 file, __u16 line)
{
	struct drop_record *rec;
	__u8 code = (__u8)(-reason);

	update_metrics(ctx->len, dir, code);

	rec = bpf_ringbuf_reserve(&cilium_events, sizeof(*rec), 0);
	if (!rec)
		return TC_ACT_SHOT;

	rec->msg.type = CILIUM_NOTIFY_DROP;
	rec->msg.subtype = code;
	rec->msg.source = source;
	rec->msg.hash = bpf_get_hash_recalc(ctx);
	rec->msg.len_orig = ctx->len;
	rec->msg.version = NOTIFY_DROP_VER;
	rec->msg.src_label = src_label;
	rec->msg.dst_label = dst_label;
	rec->msg.dst_id = dst_id;
	rec->msg.line = line;
	rec->msg.file = file;
	rec->msg.ext_error = 0;
	rec->msg.ifindex = ctx->ifindex;
	rec->msg.len_cap = notify_capture(ctx, rec->payload);
	events_submit(rec);

	return TC_ACT_SHOT;
}

#define send_drop_notify(ctx, source, src_label, dst_label, dst_id, reason, dir) \
	__send_drop_notify(ctx, source, src_label, dst_label, dst_id, reason,   \
			   dir, THIS_SOURCE_FILE, __LINE__)
