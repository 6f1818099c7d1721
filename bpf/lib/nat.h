/* SPDX-License-Identifier: Apache-2.0 */
/*
 * nat.h - source NAT of NodePort connections whose backend is on another
 * node (bpf_host), so the backend's replies come back through this node.
 *
 * cilium_snat_v4_external (LRU hash, conntrack tuples as keys) holds two
 * entries per connection:
 *   - the forward entry, keyed by the request after DNAT (client -> backend,
 *     TUPLE_F_OUT): the address and port the request's source becomes (the
 *     frontend address the client reached, i.e. this node's address, and a
 *     port allocated here);
 *   - the reverse entry, keyed by the reply as it comes back (backend ->
 *     node address:allocated port, TUPLE_F_IN): the client's address and
 *     port, and the frontend's reverse-NAT index for the reply's source.
 * Ports are allocated randomly in NAT_PORT_MIN..NAT_PORT_MAX; inserting the
 * reverse entry with BPF_NOEXIST makes a port unique per backend and
 * protocol. The LRU evicts idle connections' entries.
 */
#pragma once

#include "common.h"
#include "conntrack.h"
#include "drop.h"

/* Drop reasons of NodePort forwarding (Cilium's codes). */
#define DROP_NAT_NO_MAPPING	-167
#define DROP_FIB_LOOKUP_FAILED	-169

#define NAT_MAP_SIZE		65536
#define NAT_PORT_MIN		32768
#define NAT_PORT_MAX		65535
/* Random ports tried before giving up on a new connection. */
#define NAT_PORT_TRIES		8

/**
 * struct ipv4_nat_entry - one direction of a source-NATed connection
 * @to_addr: the address the packet's source (forward) or destination
 *           (reverse) becomes
 * @to_port: likewise the port
 * @rev_nat_index: the frontend's reverse-NAT index (reverse entries)
 */
struct ipv4_nat_entry {
	__be32	to_addr;
	__be16	to_port;
	__u16	rev_nat_index;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct ipv4_ct_tuple);
	__type(value, struct ipv4_nat_entry);
	__uint(max_entries, NAT_MAP_SIZE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_snat_v4_external SEC(".maps");

/* The reverse-entry key of a reply to @node_addr:@port from @fwd's destination. */
static __always_inline struct ipv4_ct_tuple
nat4_reverse_key(const struct ipv4_ct_tuple *fwd, __be32 node_addr, __be16 port)
{
	struct ipv4_ct_tuple key = {};

	key.saddr = fwd->daddr;
	key.sport = fwd->dport;
	key.daddr = node_addr;
	key.dport = port;
	key.nexthdr = fwd->nexthdr;
	key.flags = TUPLE_F_IN;
	return key;
}

/**
 * nat4_snat_lookup - the source a request of a NATed connection gets
 * @fwd: the request's tuple after DNAT (client -> backend)
 * @node_addr: this node's address the request reached
 * @rev_nat_index: the frontend's reverse-NAT index
 * @out: receives the new source address and port
 *
 * Allocates a port for a new connection. Returns 0 or
 * DROP_NAT_NO_MAPPING when no port could be allocated.
 */
static __always_inline int nat4_snat_lookup(const struct ipv4_ct_tuple *fwd,
					    __be32 node_addr,
					    __u16 rev_nat_index,
					    struct ipv4_nat_entry *out)
{
	struct ipv4_ct_tuple key = *fwd;
	struct ipv4_nat_entry rev = {};
	struct ipv4_ct_tuple rkey;
	struct ipv4_nat_entry *hit;
	__u32 i;

	key.flags = TUPLE_F_OUT;
	hit = bpf_map_lookup_elem(&cilium_snat_v4_external, &key);
	if (hit) {
		*out = *hit;
		return 0;
	}
	rev.to_addr = fwd->saddr;
	rev.to_port = fwd->sport;
	rev.rev_nat_index = rev_nat_index;
	for (i = 0; i < NAT_PORT_TRIES; i++) {
		__u16 port = NAT_PORT_MIN + bpf_get_prandom_u32() %
			     (NAT_PORT_MAX - NAT_PORT_MIN + 1);

		rkey = nat4_reverse_key(fwd, node_addr, bpf_htons(port));
		if (bpf_map_update_elem(&cilium_snat_v4_external, &rkey, &rev,
					BPF_NOEXIST) < 0)
			continue;
		out->to_addr = node_addr;
		out->to_port = bpf_htons(port);
		out->rev_nat_index = rev_nat_index;
		if (bpf_map_update_elem(&cilium_snat_v4_external, &key, out,
					BPF_ANY) < 0) {
			bpf_map_delete_elem(&cilium_snat_v4_external, &rkey);
			return DROP_NAT_NO_MAPPING;
		}
		return 0;
	}
	return DROP_NAT_NO_MAPPING;
}

/**
 * nat4_rev_lookup - the reverse entry of a reply to a NATed connection
 * @reply: the reply's tuple as it arrives (backend -> node:port)
 *
 * Returns the entry, or NULL when the packet is no such reply.
 */
static __always_inline struct ipv4_nat_entry *
nat4_rev_lookup(const struct ipv4_ct_tuple *reply)
{
	struct ipv4_ct_tuple key = *reply;

	key.flags = TUPLE_F_IN;
	return bpf_map_lookup_elem(&cilium_snat_v4_external, &key);
}
