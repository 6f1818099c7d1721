/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lb4.h - per-packet IPv4 service load balancing over the maps of lb.h.
 *
 * A packet leaving a pod (bpf_lxc cil_from_container) whose destination is
 * a service frontend is translated before conntrack and policy see it:
 *
 *   1. lb4_lookup_service() finds the frontend's master entry: the default
 *      (external) scope first, then the internal scope when the master says
 *      the frontend has two (SVC_FLAG_TWO_SCOPES); pod traffic is in-cluster
 *      traffic, so it takes the internal entry when there is one.
 *   2. The connection's service entry is looked up in the conntrack map of
 *      its protocol: the packet's own tuple (client -> frontend) with
 *      TUPLE_F_SERVICE. It records the backend chosen for the connection in
 *      backend_id and the frontend's rev_nat_index, so every packet of the
 *      connection goes to the same backend while the backend exists, even
 *      when the service's slots change (a terminating backend keeps its
 *      connections; new ones never pick it).
 *   3. Without an entry, or when its backend is gone, a backend is chosen
 *      as lb4_select.h does for every client (shared with socket LB,
 *      bpf_sock.c): session affinity on the client address + reverse-NAT
 *      index, else the service's algorithm: random slot or the Maglev
 *      table entry at hash(5-tuple) % LB_MAGLEV_LUT_SIZE. A master with
 *      count 0 drops at once with DROP_NO_SERVICE.
 *   4. lb4_dnat() rewrites daddr/dport with the L3 and (pseudo-header) L4
 *      checksum fixes; conntrack then tracks the translated tuple and its
 *      entry carries rev_nat_index, which the reply path uses.
 *
 * Replies are translated back (lb4_rev_nat) where they enter the client's
 * endpoint: the client's egress entry found as CT_REPLY names the
 * reverse-NAT index, whose cilium_lb4_reverse_nat entry is the frontend the
 * reply's source becomes.
 *
 * A service without backends: lb4_local() says DROP_NO_SERVICE and the
 * caller, after counting the drop, answers the client with an ICMP port
 * unreachable from the frontend (lb4_no_service_reply), so a connect()
 * fails at once with ECONNREFUSED instead of hanging (Cilium's
 * --service-no-backend-response=reject).
 *
 * Hairpin: when the backend chosen is the client itself, the source is also
 * rewritten to IPV4_LOOPBACK (169.254.42.1, Cilium's address for this), so
 * the pod's reply leaves the pod (to the loopback address, through the veth)
 * instead of being answered inside it; the reply is translated back to
 * frontend -> client and redirected straight into the pod.
 */
#pragma once

#include <linux/icmp.h>
#include <linux/ip.h>
#include <linux/in.h>

#include "common.h"
#include "conntrack.h"
#include "drop.h"
#include "lb.h"
#include "lb4_select.h"

/* Source address of hairpinned service traffic (Cilium's IPV4_LOOPBACK). */
#define IPV4_LOOPBACK		bpf_htonl(0xa9fe2a01)	/* 169.254.42.1 */

/*
 * NodePort connections to a local backend: bpf_host hands the frontend's
 * reverse-NAT index to the backend's handle_policy in cb[CB_NODEPORT],
 * tagged with NODEPORT_CB_TAG in the upper half so leftover cb[] content is
 * never taken for one; the connection's conntrack entry keeps it for the
 * backend's replies, which cil_from_container translates back.
 */
#define CB_NODEPORT		1
#define NODEPORT_CB_TAG		0x4e500000
#define NODEPORT_CB_MASK	0xffff0000

#define IP_CSUM_OFF		offsetof(struct iphdr, check)
#define IP_DADDR_OFF		offsetof(struct iphdr, daddr)
#define IP_SADDR_OFF		offsetof(struct iphdr, saddr)
#define TCP_CSUM_OFF		16
#define UDP_CSUM_OFF		6

/* The master entry of @tuple's destination in lookup scope @scope. */
static __always_inline bool lb4_lookup_scope(const struct ipv4_ct_tuple *tuple,
					     __u8 scope, struct lb4_frontend *fe)
{
	return lb4_lookup_frontend(tuple->daddr, tuple->dport, tuple->nexthdr,
				   scope, fe);
}

/**
 * lb4_lookup_service - find the master entry of a packet's destination
 * @tuple: the packet's conntrack tuple (daddr, dport, nexthdr are used)
 * @fe: receives the key and entry
 *
 * Pod traffic is in-cluster traffic (lb4_lookup_cluster). Returns true on
 * a hit.
 */
static __always_inline bool lb4_lookup_service(const struct ipv4_ct_tuple *tuple,
					       struct lb4_frontend *fe)
{
	return lb4_lookup_cluster(tuple->daddr, tuple->dport, tuple->nexthdr, fe);
}

/* Frontend kinds clients outside the cluster reach through a node. */
#define LB4_EXTERNAL_KINDS	(SVC_FLAG_NODEPORT | SVC_FLAG_EXTERNAL_IP | \
				 SVC_FLAG_LOADBALANCER)

/**
 * lb4_lookup_external - find the external-scope master entry of a packet
 * that entered the node from outside: NodePort, externalIPs and
 * load-balancer frontends only (ClusterIPs are for the cluster's own use)
 * @tuple: the packet's conntrack tuple
 * @fe: receives the key and entry
 */
static __always_inline bool lb4_lookup_external(const struct ipv4_ct_tuple *tuple,
						struct lb4_frontend *fe)
{
	return lb4_lookup_scope(tuple, LB_LOOKUP_SCOPE_EXT, fe) &&
	       (fe->svc->flags & LB4_EXTERNAL_KINDS);
}

/* A 32-bit mix of the 5-tuple, the same for every packet of a flow. */
static __always_inline __u32 lb4_flow_hash(const struct ipv4_ct_tuple *tuple)
{
	__u32 h = 0x9e3779b9;

	h ^= tuple->saddr;
	h *= 0x85ebca6b;
	h ^= tuple->daddr + (h >> 13);
	h *= 0xc2b2ae35;
	h ^= ((__u32)tuple->sport << 16 | tuple->dport) + (h >> 16);
	h *= 0x85ebca6b;
	h ^= tuple->nexthdr + (h >> 13);
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

/**
 * lb4_select_backend - choose a backend for a new connection
 * @fe: the frontend
 * @tuple: the connection's tuple before translation
 *
 * The client is the source address; Maglev hashes the 5-tuple. Returns the
 * backend ID, or 0 when the frontend has none.
 */
static __always_inline __u32 lb4_select_backend(const struct lb4_frontend *fe,
						const struct ipv4_ct_tuple *tuple)
{
	struct lb4_client client = {
		.id = tuple->saddr,
		.hash = lb4_flow_hash(tuple),
	};

	return lb4_pick_backend(fe, &client);
}

/* Rewrite a 4-byte address at @off, with both checksums. */
static __always_inline int lb4_rewrite_addr(struct __sk_buff *ctx, __u32 off,
					    __u32 l4_csum_off, __u8 proto,
					    __be32 old, __be32 new)
{
	__u64 flags = BPF_F_PSEUDO_HDR | sizeof(new);

	if (proto == IPPROTO_UDP)
		flags |= BPF_F_MARK_MANGLED_0;
	if (bpf_l4_csum_replace(ctx, l4_csum_off, old, new, flags) < 0)
		return DROP_CSUM_L4;
	if (bpf_l3_csum_replace(ctx, ETH_HLEN + IP_CSUM_OFF, old, new,
				sizeof(new)) < 0)
		return DROP_CSUM_L3;
	if (bpf_skb_store_bytes(ctx, ETH_HLEN + off, &new, sizeof(new), 0) < 0)
		return DROP_WRITE_ERROR;
	return 0;
}

/* Rewrite a port at @off (from the start of L4), with the L4 checksum. */
static __always_inline int lb4_rewrite_port(struct __sk_buff *ctx, __u32 l4_off,
					    __u32 off, __u32 l4_csum_off,
					    __u8 proto, __be16 old, __be16 new)
{
	__u64 flags = sizeof(new);

	if (old == new)
		return 0;
	if (proto == IPPROTO_UDP)
		flags |= BPF_F_MARK_MANGLED_0;
	if (bpf_l4_csum_replace(ctx, l4_csum_off, old, new, flags) < 0)
		return DROP_CSUM_L4;
	if (bpf_skb_store_bytes(ctx, l4_off + off, &new, sizeof(new), 0) < 0)
		return DROP_WRITE_ERROR;
	return 0;
}

/* Offset of the L4 checksum of a TCP or UDP packet whose L4 header is at @l4_off. */
static __always_inline __u32 lb4_l4_csum_off(__u8 proto, __u32 l4_off)
{
	return l4_off + (proto == IPPROTO_TCP ? TCP_CSUM_OFF : UDP_CSUM_OFF);
}

/**
 * lb4_rewrite - rewrite the source and/or destination of a TCP/UDP packet
 * @ctx: packet context (Ethernet + IPv4 without options are assumed at
 *       ETH_HLEN; @l4_off gives the L4 header)
 * @l4_off: offset of the L4 header
 * @tuple: the packet's tuple before the rewrite; updated to after it
 * @saddr, @sport, @daddr, @dport: the new values
 *
 * Returns 0 or a DROP_* reason.
 */
static __always_inline int lb4_rewrite(struct __sk_buff *ctx, __u32 l4_off,
				       struct ipv4_ct_tuple *tuple,
				       __be32 saddr, __be16 sport,
				       __be32 daddr, __be16 dport)
{
	__u8 proto = tuple->nexthdr;
	__u32 csum_off = lb4_l4_csum_off(proto, l4_off);
	int ret;

	if (daddr != tuple->daddr) {
		ret = lb4_rewrite_addr(ctx, IP_DADDR_OFF, csum_off, proto,
				       tuple->daddr, daddr);
		if (ret)
			return ret;
	}
	if (saddr != tuple->saddr) {
		ret = lb4_rewrite_addr(ctx, IP_SADDR_OFF, csum_off, proto,
				       tuple->saddr, saddr);
		if (ret)
			return ret;
	}
	ret = lb4_rewrite_port(ctx, l4_off, 2, csum_off, proto, tuple->dport,
			       dport);
	if (ret)
		return ret;
	ret = lb4_rewrite_port(ctx, l4_off, 0, csum_off, proto, tuple->sport,
			       sport);
	if (ret)
		return ret;
	tuple->saddr = saddr;
	tuple->sport = sport;
	tuple->daddr = daddr;
	tuple->dport = dport;
	return 0;
}

/* Reuse a connection's service entry unless a fresh SYN follows its close. */
static __always_inline bool lb4_entry_reusable(struct ct_entry *entry,
					       const struct ct_packet *pkt,
					       __u16 rev_nat_index)
{
	if (entry->rev_nat_index != rev_nat_index)
		return false;
	if (pkt->tuple.nexthdr != IPPROTO_TCP)
		return true;
	if (entry->tx_closing &&
	    (pkt->tcp_flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) == TCP_FLAG_SYN)
		return false;
	if (pkt->tcp_flags & (TCP_FLAG_FIN | TCP_FLAG_RST))
		entry->tx_closing = 1;
	return true;
}

/**
 * lb4_conn_backend - the backend of a packet's connection to a frontend
 * @fe: the frontend the packet is addressed to
 * @pkt: the packet as ct_extract4() saw it (before translation)
 * @out: receives the backend
 *
 * Reuses the connection's service entry, else chooses a backend and
 * records it. Returns 0, DROP_NO_SERVICE when the frontend has no backend,
 * or DROP_CT_CREATE_FAILED.
 */
static __always_inline int lb4_conn_backend(const struct lb4_frontend *fe,
					    struct ct_packet *pkt,
					    struct lb4_backend **out)
{
	struct ipv4_ct_tuple svc_tuple = pkt->tuple;
	struct lb4_backend *backend = NULL;
	struct ct_entry fresh = {};
	struct ct_entry *entry;
	__u32 backend_id = 0;
	__u32 now = bpf_now_sec();
	void *map;

	svc_tuple.flags = TUPLE_F_SERVICE;
	map = ct_map4(svc_tuple.nexthdr);
	entry = bpf_map_lookup_elem(map, &svc_tuple);
	if (entry && lb4_entry_reusable(entry, pkt, fe->svc->rev_nat_index)) {
		backend_id = (__u32)entry->backend_id;
		backend = bpf_map_lookup_elem(&cilium_lb4_backends_v3, &backend_id);
		if (backend) {
			entry->lifetime = now + ct_lifetime(entry, svc_tuple.nexthdr);
			*out = backend;
			return 0;
		}
	}

	backend_id = lb4_select_backend(fe, &pkt->tuple);
	if (!backend_id)
		return DROP_NO_SERVICE;
	backend = bpf_map_lookup_elem(&cilium_lb4_backends_v3, &backend_id);
	if (!backend)
		return DROP_NO_SERVICE;
	fresh.backend_id = backend_id;
	fresh.rev_nat_index = fe->svc->rev_nat_index;
	fresh.seen_non_syn = 1;
	fresh.lifetime = now + ct_lifetime(&fresh, svc_tuple.nexthdr);
	if (bpf_map_update_elem(map, &svc_tuple, &fresh, BPF_ANY) < 0)
		return DROP_CT_CREATE_FAILED;
	*out = backend;
	return 0;
}

/**
 * lb4_local - load-balance a packet leaving a pod
 * @ctx: packet context
 * @l4_off: offset of its L4 header
 * @pkt: the packet as ct_extract4() saw it; when it goes to a service, its
 *       tuple becomes the translated one and its rev_nat_index and loopback
 *       say how, for the conntrack entry ct_create_new4 makes
 * @self: the sending pod's address (hairpin detection)
 *
 * Returns 0 (translated, or not a service) or a DROP_* reason, among them
 * DROP_NO_SERVICE for a frontend without backends.
 *
 * A global (not inlined) function: the kernel verifies it once, on its
 * own, instead of once for every path of the caller it would be inlined
 * into; inlined, it made cil_from_container ten times as costly to verify
 * (every endpoint's programs are verified when the endpoint is created).
 */
__noinline int lb4_local(struct __sk_buff *ctx, __u32 l4_off,
			 struct ct_packet *pkt, __be32 self)
{
	struct lb4_backend *backend = NULL;
	struct ipv4_ct_tuple *tuple;
	struct lb4_frontend fe;
	__be32 saddr;
	int ret;

	/* A global function is verified for any pointer, NULL included. */
	if (!pkt)
		return 0;
	tuple = &pkt->tuple;
	saddr = tuple->saddr;
	if (!lb4_lookup_service(tuple, &fe))
		return 0;
	ret = lb4_conn_backend(&fe, pkt, &backend);
	if (ret)
		return ret;

	if (backend->address == self) {
		saddr = IPV4_LOOPBACK;
		pkt->loopback = true;
	}
	pkt->rev_nat_index = fe.svc->rev_nat_index;
	return lb4_rewrite(ctx, l4_off, tuple, saddr, tuple->sport,
			   backend->address, backend->port);
}

/* Hand @rev_nat_index to the next handle_policy (see CB_NODEPORT). */
static __always_inline void lb4_nodeport_cb_set(struct __sk_buff *ctx,
						__u16 rev_nat_index)
{
	ctx->cb[CB_NODEPORT] = NODEPORT_CB_TAG | rev_nat_index;
}

/* The reverse-NAT index bpf_host handed over, 0 for none; clears it. */
static __always_inline __u16 lb4_nodeport_cb_take(struct __sk_buff *ctx)
{
	__u32 value = ctx->cb[CB_NODEPORT];

	ctx->cb[CB_NODEPORT] = 0;
	if ((value & NODEPORT_CB_MASK) != NODEPORT_CB_TAG)
		return 0;
	return (__u16)value;
}

/**
 * lb4_rev_nat - translate a reply of a load-balanced connection back
 * @ctx: packet context
 * @l4_off: offset of its L4 header
 * @tuple: the reply's tuple (backend -> client); updated
 * @rev_nat_index: from the connection's conntrack entry (network order)
 * @daddr: the reply's new destination (the client; differs from the
 *         tuple's only for hairpinned replies, addressed to IPV4_LOOPBACK)
 *
 * Returns 0, or a DROP_* reason. A reverse-NAT index without an entry
 * (the service is gone) leaves the packet as it is.
 */
static __always_inline int lb4_rev_nat(struct __sk_buff *ctx, __u32 l4_off,
				       struct ipv4_ct_tuple *tuple,
				       __u16 rev_nat_index, __be32 daddr)
{
	struct lb4_reverse_nat *nat;

	nat = bpf_map_lookup_elem(&cilium_lb4_reverse_nat, &rev_nat_index);
	if (!nat)
		return 0;
	return lb4_rewrite(ctx, l4_off, tuple, nat->address, nat->port, daddr,
			   tuple->dport);
}

/**
 * lb4_loopback_rev_nat - the reverse-NAT index of a hairpinned connection
 * @tuple: the hairpinned request as it enters the pod (IPV4_LOOPBACK ->
 *         pod), any direction flag
 *
 * The pod's egress entry of the same tuple, created when the request was
 * translated, holds it; 0 when it is gone.
 */
static __always_inline __u16 lb4_loopback_rev_nat(const struct ipv4_ct_tuple *tuple)
{
	struct ipv4_ct_tuple out = *tuple;
	struct ct_entry *entry;

	out.flags = TUPLE_F_OUT;
	entry = bpf_map_lookup_elem(ct_map4(out.nexthdr), &out);
	return entry ? entry->rev_nat_index : 0;
}

/* Bytes of the offending packet an ICMP error quotes: its IP header (no
 * options, see lb4_rewrite) and the first 8 bytes of its L4 header. */
#define LB4_ICMP_QUOTE		(sizeof(struct iphdr) + 8)
#define LB4_ICMP_REPLY_LEN	(ETH_HLEN + sizeof(struct iphdr) + \
				 sizeof(struct icmphdr) + LB4_ICMP_QUOTE)

/* The one's-complement checksum of @len bytes (a multiple of 4) at @buf. */
static __always_inline __u16 lb4_csum(void *buf, __u32 len)
{
	__u32 sum = (__u32)bpf_csum_diff(NULL, 0, buf, len, 0);

	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/**
 * lb4_no_service_reply - turn a packet to a frontend without backends into
 * the ICMP port unreachable that answers it
 * @ctx: packet context: the client's packet as it left the pod (Ethernet,
 *       IPv4 without options, TCP or UDP)
 *
 * The packet is rewritten in place: MACs swapped, an IPv4 header from the
 * frontend to the client, ICMP type 3 code 3 quoting the original IP header
 * and 8 bytes of L4 (which the client's stack matches to its socket).
 * Returns 0, or a DROP_* reason when the packet cannot be rewritten; the
 * caller redirects it back into the pod.
 */
static __always_inline int lb4_no_service_reply(struct __sk_buff *ctx)
{
	struct {
		struct iphdr ip;
		struct icmphdr icmp;
		__u8 quote[LB4_ICMP_QUOTE];
	} reply = {};
	struct iphdr *orig = (struct iphdr *)reply.quote;
	__u8 macs[2 * ETH_ALEN];
	__u8 swapped[2 * ETH_ALEN];

	if (bpf_skb_load_bytes(ctx, 0, macs, sizeof(macs)) < 0 ||
	    bpf_skb_load_bytes(ctx, ETH_HLEN, reply.quote,
			       sizeof(reply.quote)) < 0)
		return DROP_INVALID;
	__builtin_memcpy(swapped, macs + ETH_ALEN, ETH_ALEN);
	__builtin_memcpy(swapped + ETH_ALEN, macs, ETH_ALEN);

	reply.ip.version = 4;
	reply.ip.ihl = 5;
	reply.ip.tot_len = bpf_htons(sizeof(reply));
	reply.ip.ttl = 64;
	reply.ip.protocol = IPPROTO_ICMP;
	reply.ip.saddr = orig->daddr;
	reply.ip.daddr = orig->saddr;
	reply.ip.check = lb4_csum(&reply.ip, sizeof(reply.ip));
	reply.icmp.type = ICMP_DEST_UNREACH;
	reply.icmp.code = ICMP_PORT_UNREACH;
	reply.icmp.checksum = lb4_csum(&reply.icmp,
				       sizeof(reply.icmp) + sizeof(reply.quote));

	if (bpf_skb_change_tail(ctx, LB4_ICMP_REPLY_LEN, 0) < 0)
		return DROP_WRITE_ERROR;
	if (bpf_skb_store_bytes(ctx, 0, swapped, sizeof(swapped), 0) < 0 ||
	    bpf_skb_store_bytes(ctx, ETH_HLEN, &reply, sizeof(reply),
				BPF_F_INVALIDATE_HASH) < 0)
		return DROP_WRITE_ERROR;
	return 0;
}
