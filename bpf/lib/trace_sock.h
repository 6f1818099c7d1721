/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trace_sock.h - socket translation notifications: a record in
 * cilium_events for each address socket LB rewrites (bpf_sock.c), so that
 * Hubble and `cilium monitor -t trace-sock` can show which service a
 * connection asked for although its packets only ever carry the backend.
 *
 * Cilium reports a forward translation twice (pre: the frontend, post: the
 * backend). Here one record per translation carries both: Cilium's 40-byte
 * layout with the translated address (the post point), followed by the
 * address before the translation, the service's reverse-NAT index, the
 * socket's own address and its network namespace's cookie. One ring-buffer
 * reserve and submit per connect.
 */
#pragma once

#include <linux/in.h>

#include "common.h"
#include "events.h"

/* Notification type of a socket translation (Cilium's CILIUM_NOTIFY_TRACE_SOCK). */
#define CILIUM_NOTIFY_TRACE_SOCK	7

/* Translation points (Cilium's enum xlate_point; Hubble's SocketTranslationPoint). */
#define XLATE_PRE_DIRECTION_FWD		1	/* destination before a forward translation */
#define XLATE_POST_DIRECTION_FWD	2	/* destination after a forward translation */
#define XLATE_PRE_DIRECTION_REV		3	/* peer before a reverse translation */
#define XLATE_POST_DIRECTION_REV	4	/* peer after a reverse translation */

/* Transport protocols as the record names them (Cilium's enum l4_protocol). */
#define TRACE_SOCK_L4_UNKNOWN	0
#define TRACE_SOCK_L4_TCP	1
#define TRACE_SOCK_L4_UDP	2

/* trace_sock_notify.flags: the addresses are IPv6 (never set: IPv4 only). */
#define TRACE_SOCK_FLAG_IPV6	0x01

/*
 * struct trace_sock_notify - one socket address translation
 *
 * Offsets 0-39 are Cilium's layout: @dst_ip/@dst_port is the address the
 * application sees after the translation (the backend for a forward one,
 * the frontend for a reverse one). Ours adds, from offset 40:
 *
 *   orig_ip4/orig_port  the address before the translation (the frontend
 *                       for a forward one, the backend for a reverse one)
 *   rev_nat             reverse-NAT index of the frontend (network order)
 *   src_ip4/src_port    the socket's own address; 0 while it is not bound
 *                       (a connect() usually runs before the kernel picks one)
 *   netns_cookie        the cookie of the socket's network namespace, which
 *                       names the client pod when the socket has no address
 *                       yet (every pod has its own namespace; the agent reads
 *                       each endpoint's with SO_NETNS_COOKIE)
 *
 * Ports are in network order.
 */
struct trace_sock_notify {
	__u8	type;
	__u8	xlate_point;
	__u8	l4_proto;
	__u8	flags;
	__be16	dst_port;
	__u16	pad1;
	__u64	sock_cookie;
	__u64	cgroup_id;
	union {
		struct {
			__be32	dst_ip4;
			__u32	dst_pad[3];
		};
		__u8	dst_ip6[16];
	};
	__be32	orig_ip4;
	__be16	orig_port;
	__be16	rev_nat;
	__be32	src_ip4;
	__be16	src_port;
	__u16	pad2;
	__u64	netns_cookie;
};

/* The record's name for an IP protocol number. */
static __always_inline __u8 trace_sock_l4_proto(__u32 protocol)
{
	switch (protocol) {
	case IPPROTO_TCP:
		return TRACE_SOCK_L4_TCP;
	case IPPROTO_UDP:
		return TRACE_SOCK_L4_UDP;
	default:
		return TRACE_SOCK_L4_UNKNOWN;
	}
}

/**
 * struct trace_sock_xlate - one translation, as the hook made it
 * @xlate_point: XLATE_POST_DIRECTION_FWD or XLATE_POST_DIRECTION_REV
 * @cookie: the socket cookie
 * @ip4, @port: the address after the translation
 * @orig_ip4, @orig_port: the address before it
 * @rev_nat: reverse-NAT index of the frontend (network order)
 */
struct trace_sock_xlate {
	__u8	xlate_point;
	__u64	cookie;
	__be32	ip4;
	__be16	port;
	__be32	orig_ip4;
	__be16	orig_port;
	__be16	rev_nat;
};

/**
 * send_trace_sock_notify4 - report an IPv4 socket address translation
 * @ctx: the cgroup socket-address hook's context
 * @xlate: what was translated
 *
 * Submitted without a wake-up (events_submit); nothing is reported when
 * the ring buffer is full.
 */
static __always_inline void
send_trace_sock_notify4(struct bpf_sock_addr *ctx,
			const struct trace_sock_xlate *xlate)
{
	struct trace_sock_notify *msg;
	struct bpf_sock *sk;

	msg = bpf_ringbuf_reserve(&cilium_events, sizeof(*msg), 0);
	if (!msg)
		return;
	msg->type = CILIUM_NOTIFY_TRACE_SOCK;
	msg->xlate_point = xlate->xlate_point;
	msg->l4_proto = trace_sock_l4_proto(ctx->protocol);
	msg->flags = 0;
	msg->dst_port = xlate->port;
	msg->pad1 = 0;
	msg->sock_cookie = xlate->cookie;
	msg->cgroup_id = bpf_get_current_cgroup_id();
	msg->dst_ip4 = xlate->ip4;
	msg->dst_pad[0] = 0;
	msg->dst_pad[1] = 0;
	msg->dst_pad[2] = 0;
	msg->orig_ip4 = xlate->orig_ip4;
	msg->orig_port = xlate->orig_port;
	msg->rev_nat = xlate->rev_nat;
	msg->src_ip4 = 0;
	msg->src_port = 0;
	sk = ctx->sk;
	if (sk) {
		msg->src_ip4 = sk->src_ip4;
		/* bpf_sock.src_port is in host order. */
		msg->src_port = bpf_htons((__u16)sk->src_port);
	}
	msg->pad2 = 0;
	msg->netns_cookie = bpf_get_netns_cookie(ctx);
	events_submit(msg);
}
