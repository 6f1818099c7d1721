/* SPDX-License-Identifier: Apache-2.0 */
/*
 * events.h - the cilium_events ring buffer and the notification header
 * shared by trace and drop records.
 */
#pragma once

#include "common.h"

/* Notification types (Cilium's CILIUM_NOTIFY_*). */
#define CILIUM_NOTIFY_DROP	1
#define CILIUM_NOTIFY_TRACE	4

/* Bytes of the packet copied after each notification. */
#define TRACE_PAYLOAD_LEN	128

/* Size of the cilium_events ring buffer (a power of two, in bytes). */
#define EVENTS_RINGBUF_SIZE	(4 * 1024 * 1024)

/*
 * Header of every record: type, subtype (observation point or drop
 * reason), source endpoint id, flow hash, original packet length,
 * captured length and layout version of the record.
 */
#define NOTIFY_CAPTURE_HDR	\
	__u8	type;		\
	__u8	subtype;	\
	__u16	source;		\
	__u32	hash;		\
	__u32	len_orig;	\
	__u16	len_cap;	\
	__u16	version;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, EVENTS_RINGBUF_SIZE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_events SEC(".maps");

/**
 * notify_capture - copy the start of the packet into a record
 * @ctx: packet context
 * @buf: TRACE_PAYLOAD_LEN bytes of ring buffer memory
 *
 * Returns the number of bytes copied (0 when nothing could be copied).
 */
static __always_inline __u16 notify_capture(struct __sk_buff *ctx, __u8 *buf)
{
	__u32 cap = ctx->len;

	if (cap > TRACE_PAYLOAD_LEN)
		cap = TRACE_PAYLOAD_LEN;
	/* Keep the bound visible to the verifier after optimisation. */
	asm volatile("" : "+r"(cap));
	if (cap < 1 || cap > TRACE_PAYLOAD_LEN)
		return 0;
	if (bpf_skb_load_bytes(ctx, 0, buf, cap) < 0)
		return 0;
	return (__u16)cap;
}
