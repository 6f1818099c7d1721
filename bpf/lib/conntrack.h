/* SPDX-License-Identifier: Apache-2.0 */
/*
 * conntrack.h - IPv4 connection tracking in the node-wide maps
 * cilium_ct4_global (TCP) and cilium_ct_any4_global (everything else).
 *
 * Key convention: an entry's tuple holds the addresses and ports of the
 * packet that created it (saddr/sport = its source, daddr/dport = its
 * destination) and TUPLE_F_OUT when it was created on egress from an
 * endpoint, TUPLE_F_IN when created on ingress to one. Both endpoints of a
 * local connection keep their own entry in the shared map. A packet's own
 * tuple finds it CT_ESTABLISHED, the reversed tuple with the direction flag
 * flipped CT_REPLY (ct_lookup4 tries the likelier one first); with neither
 * it is CT_NEW. tx_* counters count the creating direction, rx_* the reply.
 * ICMP echo uses the identifier as a port: the request's source port, the
 * reply's destination port, so replies match their request.
 *
 * Service connections (lib/lb4.h) have two kinds of entries:
 *   - the service entry, keyed by the packet's tuple before translation
 *     (client -> frontend) with TUPLE_F_SERVICE: backend_id (in place of
 *     rx_packets, which it shares storage with) is the backend chosen for the
 *     connection, rev_nat_index the frontend's; only lifetime and tx_closing
 *     are maintained besides;
 *   - the ordinary entries of the translated tuple (client -> backend),
 *     whose rev_nat_index (network order) says the connection was
 *     translated, so that ct_lookup4 hands it to the reply path, and whose
 *     lb_loopback marks a hairpinned connection (source IPV4_LOOPBACK).
 *     For a NodePort connection to a local backend it is the backend's
 *     ingress entry that carries rev_nat_index (bpf_host hands it over), so
 *     the backend's replies are translated back as they leave it.
 */
#pragma once

#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/icmp.h>
#include <linux/in.h>

#include "common.h"
#include "drop.h"
#include "ipv4.h"
#include "trace.h"

#define TUPLE_F_OUT		0
#define TUPLE_F_IN		1
#define TUPLE_F_RELATED		2
#define TUPLE_F_SERVICE		4

enum ct_dir {
	CT_EGRESS,
	CT_INGRESS,
	CT_SERVICE,
};

enum ct_status {
	CT_NEW,
	CT_ESTABLISHED,
	CT_REPLY,
	CT_RELATED,
};

/* Lifetimes in seconds (Cilium's agent defaults). */
#define CT_LIFETIME_TCP		21600
#define CT_LIFETIME_TCP_SYN	60
#define CT_LIFETIME_NONTCP	60
#define CT_CLOSE_TIMEOUT	10

/* Minimum seconds between two reports of the same connection direction. */
#define CT_REPORT_INTERVAL	5

#define CT_MAP_SIZE_TCP		524288
#define CT_MAP_SIZE_ANY		262144

#define TCP_FLAG_FIN	0x01
#define TCP_FLAG_SYN	0x02
#define TCP_FLAG_RST	0x04
#define TCP_FLAG_ACK	0x10

/* TCP flags whose first appearance in a direction is always reported. */
#define MONITOR_AGGREGATION_FLAGS	(TCP_FLAG_SYN | TCP_FLAG_FIN | TCP_FLAG_RST)

#define ICMP_ECHOREPLY_TYPE	0
#define ICMP_ECHO_TYPE		8

struct ipv4_ct_tuple {
	__be32	daddr;
	__be32	saddr;
	__be16	dport;
	__be16	sport;
	__u8	nexthdr;
	__u8	flags;
} __attribute__((packed));

struct ct_entry {
	union {
		__u64	rx_packets;
		__u64	backend_id;	/* service entries (TUPLE_F_SERVICE) */
	};
	__u64	rx_bytes;
	__u64	tx_packets;
	__u64	tx_bytes;
	__u32	lifetime;
	__u16	rx_closing:1,
		tx_closing:1,
		nat46:1,
		lb_loopback:1,
		seen_non_syn:1,
		node_port:1,
		proxy_redirect:1,
		dsr:1,
		from_l7lb:1,
		reserved1:1,
		from_tunnel:1,
		reserved:5;
	__u16	rev_nat_index;
	__u16	ifindex;
	__u8	tx_flags_seen;
	__u8	rx_flags_seen;
	__u32	src_sec_id;
	__u32	last_tx_report;
	__u32	last_rx_report;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ipv4_ct_tuple);
	__type(value, struct ct_entry);
	__uint(max_entries, CT_MAP_SIZE_TCP);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_ct4_global SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ipv4_ct_tuple);
	__type(value, struct ct_entry);
	__uint(max_entries, CT_MAP_SIZE_ANY);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_ct_any4_global SEC(".maps");

/**
 * struct ct_packet - a packet as conntrack sees it
 * @tuple: the packet's own tuple (flags set by ct_lookup4)
 * @tcp_flags: TCP flags of the packet (0 for other protocols)
 * @len: full packet length, for the byte counters
 * @rev_nat_index: the connection's reverse-NAT index (network order, 0 when
 *                 it was not load-balanced): read from the entry ct_lookup4
 *                 found, stored in the entry ct_create_new4 creates
 * @loopback: the connection is hairpinned (same two ways as @rev_nat_index)
 */
struct ct_packet {
	struct ipv4_ct_tuple	tuple;
	__u8			tcp_flags;
	__u32			len;
	__u16			rev_nat_index;
	bool			loopback;
};

/*
 * The bytes of a TCP header conntrack reads, in one load: the ports, and
 * byte 13 (FIN..CWR).
 */
struct ct_tcp_view {
	__be16	sport;
	__be16	dport;
	__u8	seq_ack_doff[9];
	__u8	flags;
};

/**
 * ct_extract4 - build the conntrack view of an IPv4 packet
 * @ctx: packet context
 * @ip4: validated IPv4 header (invalid after the call)
 * @pkt: filled on success
 *
 * Returns 0, DROP_CT_INVALID_HDR when the L4 header is truncated, or
 * DROP_FRAG_NOSUPPORT for non-first fragments of port-based protocols.
 */
static __always_inline int ct_extract4(struct __sk_buff *ctx,
				       struct iphdr *ip4,
				       struct ct_packet *pkt)
{
	__u32 l4_off = ipv4_l4_offset(ip4);
	__u8 proto = ip4->protocol;

	pkt->tuple.saddr = ip4->saddr;
	pkt->tuple.daddr = ip4->daddr;
	pkt->tuple.nexthdr = proto;
	pkt->tuple.flags = TUPLE_F_OUT;
	pkt->tuple.sport = 0;
	pkt->tuple.dport = 0;
	pkt->tcp_flags = 0;
	pkt->len = ctx->len;
	pkt->rev_nat_index = 0;
	pkt->loopback = false;

	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP &&
	    proto != IPPROTO_ICMP)
		return 0;
	if (ipv4_is_later_fragment(ip4))
		return DROP_FRAG_NOSUPPORT;

	if (proto == IPPROTO_ICMP) {
		struct icmphdr icmp;

		if (bpf_skb_load_bytes(ctx, l4_off, &icmp, sizeof(icmp)) < 0)
			return DROP_CT_INVALID_HDR;
		if (icmp.type == ICMP_ECHO_TYPE)
			pkt->tuple.sport = icmp.un.echo.id;
		else if (icmp.type == ICMP_ECHOREPLY_TYPE)
			pkt->tuple.dport = icmp.un.echo.id;
		return 0;
	}

	if (proto == IPPROTO_TCP) {
		struct ct_tcp_view tcp;

		if (bpf_skb_load_bytes(ctx, l4_off, &tcp, sizeof(tcp)) < 0)
			return DROP_CT_INVALID_HDR;
		pkt->tuple.sport = tcp.sport;
		pkt->tuple.dport = tcp.dport;
		pkt->tcp_flags = tcp.flags;
		return 0;
	}

	{
		__be16 ports[2];

		if (bpf_skb_load_bytes(ctx, l4_off, ports, sizeof(ports)) < 0)
			return DROP_CT_INVALID_HDR;
		pkt->tuple.sport = ports[0];
		pkt->tuple.dport = ports[1];
	}
	return 0;
}

static __always_inline void *ct_map4(__u8 nexthdr)
{
	if (nexthdr == IPPROTO_TCP)
		return &cilium_ct4_global;
	return &cilium_ct_any4_global;
}

static __always_inline void ct_tuple_reverse4(struct ipv4_ct_tuple *tuple)
{
	__be32 addr = tuple->saddr;
	__be16 port = tuple->sport;

	tuple->saddr = tuple->daddr;
	tuple->daddr = addr;
	tuple->sport = tuple->dport;
	tuple->dport = port;
	tuple->flags ^= TUPLE_F_IN;
}

static __always_inline __u32 ct_lifetime(const struct ct_entry *entry,
					 __u8 nexthdr)
{
	if (nexthdr != IPPROTO_TCP)
		return CT_LIFETIME_NONTCP;
	if (entry->rx_closing && entry->tx_closing)
		return CT_CLOSE_TIMEOUT;
	if (entry->seen_non_syn)
		return CT_LIFETIME_TCP;
	return CT_LIFETIME_TCP_SYN;
}

/**
 * ct_account - update an entry for one packet
 * @entry: the entry found
 * @pkt: the packet
 * @reply: the packet travels in the reply direction of the entry
 * @now: bpf_now_sec()
 *
 * Returns true when monitor aggregation should report this packet: a TCP
 * flag from MONITOR_AGGREGATION_FLAGS seen for the first time in this
 * direction, or CT_REPORT_INTERVAL elapsed since the last report.
 */
static __always_inline bool ct_account(struct ct_entry *entry,
				       const struct ct_packet *pkt,
				       bool reply, __u32 now)
{
	__u8 seen = pkt->tcp_flags;
	__u8 old_seen;
	bool monitor = false;

	if (reply) {
		__sync_fetch_and_add(&entry->rx_packets, 1);
		__sync_fetch_and_add(&entry->rx_bytes, pkt->len);
		old_seen = entry->rx_flags_seen;
		if ((seen & ~old_seen) & MONITOR_AGGREGATION_FLAGS)
			monitor = true;
		if ((old_seen | seen) != old_seen)
			entry->rx_flags_seen = old_seen | seen;
		if (now - entry->last_rx_report >= CT_REPORT_INTERVAL) {
			entry->last_rx_report = now;
			monitor = true;
		}
	} else {
		__sync_fetch_and_add(&entry->tx_packets, 1);
		__sync_fetch_and_add(&entry->tx_bytes, pkt->len);
		old_seen = entry->tx_flags_seen;
		if ((seen & ~old_seen) & MONITOR_AGGREGATION_FLAGS)
			monitor = true;
		if ((old_seen | seen) != old_seen)
			entry->tx_flags_seen = old_seen | seen;
		if (now - entry->last_tx_report >= CT_REPORT_INTERVAL) {
			entry->last_tx_report = now;
			monitor = true;
		}
	}

	if (pkt->tuple.nexthdr == IPPROTO_TCP) {
		if (seen & TCP_FLAG_RST) {
			entry->rx_closing = 1;
			entry->tx_closing = 1;
		} else if (seen & TCP_FLAG_FIN) {
			if (reply)
				entry->rx_closing = 1;
			else
				entry->tx_closing = 1;
		}
		if (!(seen & TCP_FLAG_SYN))
			entry->seen_non_syn = 1;
	}

	entry->lifetime = now + ct_lifetime(entry, pkt->tuple.nexthdr);
	return monitor;
}

/**
 * ct_reopens - whether a packet starts a new connection on the tuple of a
 * closing TCP entry (a fresh SYN from the original side)
 *
 * Such a connection is new in every way: it may be translated to another
 * frontend's backend (service entries pick afresh after a close), or be
 * hairpinned, so ct_lookup4 reports it as CT_NEW and ct_create_new4
 * rewrites the old entry, in place, from what the packet carries now.
 * (Clients that open connections at a high rate reuse their ports within
 * the close timeout; rewriting spares the map a delete and an insert.)
 */
static __always_inline bool ct_reopens(const struct ct_entry *entry,
				       const struct ct_packet *pkt)
{
	if (pkt->tuple.nexthdr != IPPROTO_TCP ||
	    (pkt->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) != TCP_FLAG_SYN)
		return false;
	return entry->rx_closing || entry->tx_closing;
}

/**
 * ct_create4 - insert the entry for a new connection
 * @pkt: the packet, with tuple flags already set for its direction
 * @src_sec_id: identity of the connection's source
 * @now: bpf_now_sec()
 * @reopened: the closing entry of the same tuple to rewrite, or NULL to
 *            insert a new one
 *
 * Returns 0 or DROP_CT_CREATE_FAILED.
 */
static __always_inline int ct_create4(const struct ct_packet *pkt,
				      __u32 src_sec_id, __u32 now,
				      struct ct_entry *reopened)
{
	struct ct_entry entry = {};

	entry.tx_packets = 1;
	entry.tx_bytes = pkt->len;
	entry.tx_flags_seen = pkt->tcp_flags;
	entry.last_tx_report = now;
	entry.src_sec_id = src_sec_id;
	entry.rev_nat_index = pkt->rev_nat_index;
	entry.lb_loopback = pkt->loopback;
	if (pkt->tuple.nexthdr == IPPROTO_TCP && !(pkt->tcp_flags & TCP_FLAG_SYN))
		entry.seen_non_syn = 1;
	entry.lifetime = now + ct_lifetime(&entry, pkt->tuple.nexthdr);

	if (reopened) {
		*reopened = entry;
		return 0;
	}
	if (bpf_map_update_elem(ct_map4(pkt->tuple.nexthdr), &pkt->tuple,
				&entry, BPF_ANY) < 0)
		return DROP_CT_CREATE_FAILED;
	return 0;
}

/* ct_lookup_as4's answer when the entry it looked for does not exist. */
#define CT_ABSENT	(-1)

/*
 * Which of a packet's two lookups to try first. Servers listen on low ports
 * and clients send from ephemeral ones, so a packet from a lower port to a
 * higher one is most likely a reply: trying its reverse tuple first spares
 * each reply a lookup that misses, on a bucket nothing else touches (a cache
 * miss). Either order finds the same entry; only the cost differs.
 */
static __always_inline bool ct_reply_likely(const struct ipv4_ct_tuple *tuple)
{
	return bpf_ntohs(tuple->sport) < bpf_ntohs(tuple->dport);
}

/*
 * One lookup of ct_lookup4: the packet's own tuple (@reply false) or its
 * reverse (@reply true). Accounts the packet to the entry found and returns
 * CT_ESTABLISHED or CT_REPLY, CT_NEW for a fresh SYN on a closing entry
 * (*@reopened set), or CT_ABSENT.
 */
static __always_inline int ct_lookup_as4(void *map, struct ct_packet *pkt,
					 bool reply, __u32 now,
					 struct trace_ctx *tctx,
					 struct ct_entry **reopened)
{
	struct ct_entry *entry;

	if (reply)
		ct_tuple_reverse4(&pkt->tuple);
	entry = bpf_map_lookup_elem(map, &pkt->tuple);
	if (reply)
		ct_tuple_reverse4(&pkt->tuple);
	if (!entry)
		return CT_ABSENT;
	if (!reply && ct_reopens(entry, pkt)) {
		*reopened = entry;
		return CT_NEW;
	}
	pkt->rev_nat_index = entry->rev_nat_index;
	pkt->loopback = entry->lb_loopback;
	tctx->monitor = ct_account(entry, pkt, reply, now);
	if (reply) {
		tctx->reason = TRACE_REASON_CT_REPLY;
		return CT_REPLY;
	}
	tctx->reason = TRACE_REASON_CT_ESTABLISHED;
	return CT_ESTABLISHED;
}

/**
 * ct_lookup4 - look a packet up and account it to the entry it belongs to
 * @pkt: the packet; its tuple is left in the packet's own orientation,
 *       with the direction flag of @dir
 * @dir: CT_EGRESS (leaving an endpoint) or CT_INGRESS (entering one)
 * @tctx: receives the trace reason and the monitor decision
 * @reopened: set to the closing entry a fresh SYN reuses the tuple of (to
 *            be handed to ct_create_new4), NULL otherwise
 *
 * Returns CT_ESTABLISHED (the packet's own tuple has an entry), CT_REPLY
 * (the reversed tuple, direction flag flipped, has one), or CT_NEW when
 * neither exists or a fresh SYN reuses a closing entry's tuple; the caller
 * then creates the entry with ct_create_new4, which needs the identity of
 * the connection's source. Until then a reused entry stays as it was:
 * closing.
 */
static __always_inline int ct_lookup4(struct ct_packet *pkt, enum ct_dir dir,
				      struct trace_ctx *tctx,
				      struct ct_entry **reopened)
{
	void *map = ct_map4(pkt->tuple.nexthdr);
	/* A connection's first packet (a pure SYN) is never a reply. */
	bool syn = pkt->tuple.nexthdr == IPPROTO_TCP &&
		   (pkt->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN;
	bool reply_first = !syn && ct_reply_likely(&pkt->tuple);
	__u32 now = bpf_now_sec();
	int ret;

	*reopened = NULL;
	pkt->tuple.flags = dir == CT_INGRESS ? TUPLE_F_IN : TUPLE_F_OUT;

	ret = ct_lookup_as4(map, pkt, reply_first, now, tctx, reopened);
	if (ret != CT_ABSENT)
		return ret;
	if (syn)
		return CT_NEW;
	ret = ct_lookup_as4(map, pkt, !reply_first, now, tctx, reopened);
	return ret == CT_ABSENT ? CT_NEW : ret;
}

/**
 * ct_create_new4 - create the entry of a packet ct_lookup4 found CT_NEW
 * @pkt: the packet as ct_lookup4 left it
 * @src_sec_id: identity of the connection's source, stored in the entry
 * @tctx: receives the trace reason and the monitor decision
 * @reopened: what ct_lookup4 set it to
 *
 * Returns CT_NEW or DROP_CT_CREATE_FAILED.
 */
static __always_inline int ct_create_new4(const struct ct_packet *pkt,
					  __u32 src_sec_id,
					  struct trace_ctx *tctx,
					  struct ct_entry *reopened)
{
	int ret;

	ret = ct_create4(pkt, src_sec_id, bpf_now_sec(), reopened);
	if (IS_DROP(ret))
		return ret;
	tctx->reason = TRACE_REASON_POLICY;
	tctx->monitor = 1;
	return CT_NEW;
}

