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

/*
 * Records are submitted without waking the reader: a wake-up costs an
 * irq_work interrupt on this CPU and an IPI to the reader's, per record,
 * which halved the connect/close rate (docs/benchmarks.md). The agent drains
 * the ring on a short timer instead; a ring filling past this mark wakes it
 * at once so bursts are not lost.
 */
#define EVENTS_WAKEUP_THRESHOLD	(EVENTS_RINGBUF_SIZE / 8)

/**
 * events_submit - commit a reserved record to cilium_events
 * @rec: record returned by bpf_ringbuf_reserve on cilium_events
 */
static __always_inline void events_submit(void *rec)
{
	__u64 flags = BPF_RB_NO_WAKEUP;

	if (bpf_ringbuf_query(&cilium_events, BPF_RB_AVAIL_DATA) >=
	    EVENTS_WAKEUP_THRESHOLD)
		flags = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(rec, flags);
}

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
