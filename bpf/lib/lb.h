/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lb.h - service load-balancing maps, with Cilium's names, layouts and
 * default sizes:
 *
 *   cilium_lb4_services_v2   frontend (address, port, protocol, scope) and
 *                            backend slot -> service entry. Slot 0 is the
 *                            "master": count of backend slots, reverse-NAT
 *                            index, flags, affinity timeout and selection
 *                            algorithm. Slots 1..count hold the IDs of the
 *                            active backends; terminating backends have no
 *                            slot (no new connections) but stay in
 *                            cilium_lb4_backends_v3 for existing ones.
 *   cilium_lb4_backends_v3   backend ID -> address, port, protocol, state.
 *   cilium_lb4_reverse_nat   reverse-NAT index -> frontend address and port,
 *                            to restore the service address on replies.
 *   cilium_lb4_maglev        reverse-NAT index -> inner array holding the
 *                            frontend's Maglev lookup table of backend IDs.
 *   cilium_lb4_affinity      client (address or netns cookie) and reverse-NAT
 *                            index -> backend last chosen (session affinity).
 *   cilium_lb_affinity_match backend ID and reverse-NAT index present while
 *                            the backend may still be chosen by affinity.
 *   cilium_lb4_reverse_sk    socket LB (bpf_sock.c): socket cookie and the
 *                            backend a socket was sent to -> the frontend
 *                            the application asked for, so recvmsg and
 *                            getpeername show the service address (LRU).
 *
 * The agent writes them in an order that never leaves a reachable entry
 * pointing at a missing one (crates/loadbalancer, diff.rs). The Rust mirrors
 * are in crates/datapath/src/lb_abi.rs; the _Static_asserts at the end of
 * this file and the layout tests there check the same sizes and offsets.
 *
 * Byte order: addresses and ports are network order; the reverse-NAT index
 * is network order wherever it appears (service entries, reverse-NAT and
 * Maglev keys, affinity keys), so a value read from one map keys the next;
 * backend IDs, slots, counts and timeouts are host order.
 */
#pragma once

#include <stddef.h>

#include "common.h"

/* lb4_key.scope: which backend set a lookup asks for. */
#define LB_LOOKUP_SCOPE_EXT	0	/* default; traffic from outside the node's pods */
#define LB_LOOKUP_SCOPE_INT	1	/* traffic from the cluster, when TWO_SCOPES */

/* lb4_service.flags. */
#define SVC_FLAG_EXTERNAL_IP	(1 << 0)	/* externalIPs frontend */
#define SVC_FLAG_NODEPORT	(1 << 1)	/* NodePort frontend */
#define SVC_FLAG_EXT_LOCAL_SCOPE (1 << 2)	/* externalTrafficPolicy=Local */
#define SVC_FLAG_HOSTPORT	(1 << 3)	/* hostPort frontend */
#define SVC_FLAG_AFFINITY	(1 << 4)	/* sessionAffinity=ClientIP */
#define SVC_FLAG_LOADBALANCER	(1 << 5)	/* LoadBalancer frontend */
#define SVC_FLAG_ROUTABLE	(1 << 6)	/* reachable from outside the node */
#define SVC_FLAG_SOURCE_RANGE	(1 << 7)	/* loadBalancerSourceRanges apply */

/* lb4_service.flags2. */
#define SVC_FLAG_LOCALREDIRECT	(1 << 0)	/* local redirect policy */
#define SVC_FLAG_NAT_46X64	(1 << 1)	/* NAT46/64 service */
#define SVC_FLAG_L7LOADBALANCER	(1 << 2)	/* L7 proxy load balancing */
#define SVC_FLAG_LOOPBACK	(1 << 3)	/* hostPort on a loopback address */
#define SVC_FLAG_INT_LOCAL_SCOPE (1 << 4)	/* internalTrafficPolicy=Local */
#define SVC_FLAG_TWO_SCOPES	(1 << 5)	/* an LB_LOOKUP_SCOPE_INT entry exists */

/* lb4_backend.flags: the backend's state. */
#define BE_STATE_ACTIVE		0
#define BE_STATE_TERMINATING	1
#define BE_STATE_QUARANTINED	2
#define BE_STATE_MAINTENANCE	3

/* Backend selection algorithms. */
#define LB_SELECTION_RANDOM	1
#define LB_SELECTION_MAGLEV	2
#define LB_SELECTION_FIRST	3

/*
 * A master entry's affinity_timeout carries the service's selection
 * algorithm in its top byte (0: the datapath's default) and the affinity
 * timeout in seconds in the low 24 bits.
 */
#define LB_ALGORITHM_SHIFT	24
#define AFFINITY_TIMEOUT_MASK	((1U << LB_ALGORITHM_SHIFT) - 1)

/* Default capacities (Cilium's --bpf-lb-map-max). */
#define LB_SERVICE_MAP_MAX_ENTRIES	65536
#define LB_BACKENDS_MAP_MAX_ENTRIES	65536
#define LB_REV_NAT_MAP_MAX_ENTRIES	65536
#define LB_AFFINITY_MAP_MAX_ENTRIES	65536
#define LB_MAGLEV_MAP_MAX_ENTRIES	65536
/* Cilium sizes it with the conntrack tables; 65536 is its minimum. */
#define LB_SOCK_REV_NAT_MAP_MAX_ENTRIES	65536

/* Maglev table size M, a prime; Cilium's default. */
#ifndef LB_MAGLEV_LUT_SIZE
#define LB_MAGLEV_LUT_SIZE	16381
#endif

struct lb4_key {
	__be32 address;		/* frontend address */
	__be16 dport;		/* frontend port */
	__u16 backend_slot;	/* 0: master entry, 1..count: backend slots */
	__u8 proto;		/* IPPROTO_TCP / IPPROTO_UDP */
	__u8 scope;		/* LB_LOOKUP_SCOPE_* */
	__u8 pad[2];
};

struct lb4_service {
	union {
		__u32 backend_id;	/* backend slot: the backend */
		__u32 affinity_timeout;	/* master: algorithm << 24 | seconds */
		__u32 l7_lb_proxy_port;	/* master of an L7 service */
	};
	__u16 count;		/* master: number of backend slots */
	__u16 rev_nat_index;	/* network order */
	__u8 flags;		/* SVC_FLAG_* */
	__u8 flags2;		/* SVC_FLAG_* of the second set */
	__u8 pad[2];
};

struct lb4_backend {
	__be32 address;
	__be16 port;
	__u8 proto;
	__u8 flags;		/* BE_STATE_* */
	__u8 cluster_id;
	__u8 pad[3];
};

struct lb4_reverse_nat {
	__be32 address;
	__be16 port;
} __attribute__((packed));

union lb4_affinity_client_id {
	__u32 client_ip;	/* network order */
	__u64 client_cookie;	/* network namespace cookie */
} __attribute__((packed));

struct lb4_affinity_key {
	union lb4_affinity_client_id client_id;
	__u16 rev_nat_id;	/* network order */
	__u8 netns_cookie:1,	/* client_id is a netns cookie */
	     reserved:7;
	__u8 pad1;
	__u32 pad2;
} __attribute__((packed));

struct lb_affinity_val {
	__u64 last_used;	/* bpf_now_sec() */
	__u32 backend_id;
	__u32 pad;
} __attribute__((packed));

struct lb_affinity_match {
	__u32 backend_id;
	__u16 rev_nat_id;	/* network order */
	__u16 pad;
} __attribute__((packed));

/* Key of cilium_lb4_reverse_sk: a socket and the backend it was sent to. */
struct lb4_sock_rev_key {
	__u64 cookie;		/* bpf_get_socket_cookie() */
	__be32 address;		/* backend */
	__be16 port;
	__u16 pad;
};

/* Value of cilium_lb4_reverse_sk: the frontend the application used. */
struct lb4_sock_rev_entry {
	__be32 address;
	__be16 port;
	__u16 rev_nat_index;	/* network order */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb4_key);
	__type(value, struct lb4_service);
	__uint(max_entries, LB_SERVICE_MAP_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_lb4_services_v2 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);	/* backend ID */
	__type(value, struct lb4_backend);
	__uint(max_entries, LB_BACKENDS_MAP_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_lb4_backends_v3 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u16);	/* reverse-NAT index, network order */
	__type(value, struct lb4_reverse_nat);
	__uint(max_entries, LB_REV_NAT_MAP_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_lb4_reverse_nat SEC(".maps");

/*
 * The inner maps are created by the agent, one per frontend using Maglev;
 * only the outer map is pinned. Each holds one entry (key 0) whose value is
 * the whole table.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__type(key, __u16);	/* reverse-NAT index, network order */
	__uint(max_entries, LB_MAGLEV_MAP_MAX_ENTRIES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_ARRAY);
		__uint(key_size, sizeof(__u32));
		__uint(value_size, sizeof(__u32) * LB_MAGLEV_LUT_SIZE);
		__uint(max_entries, 1);
	});
} cilium_lb4_maglev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb4_affinity_key);
	__type(value, struct lb_affinity_val);
	__uint(max_entries, LB_AFFINITY_MAP_MAX_ENTRIES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_lb4_affinity SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct lb_affinity_match);
	__type(value, __u8);
	__uint(max_entries, LB_AFFINITY_MAP_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_lb_affinity_match SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, struct lb4_sock_rev_key);
	__type(value, struct lb4_sock_rev_entry);
	__uint(max_entries, LB_SOCK_REV_NAT_MAP_MAX_ENTRIES);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_lb4_reverse_sk SEC(".maps");

/* The layouts lb_abi.rs mirrors; a change here must be made there too. */
#define LB_ASSERT_SIZE(type, size) \
	_Static_assert(sizeof(type) == (size), #type " size changed: update lb_abi.rs")
#define LB_ASSERT_OFFSET(type, field, off) \
	_Static_assert(offsetof(type, field) == (off), \
		       #type "." #field " moved: update lb_abi.rs")

LB_ASSERT_SIZE(struct lb4_key, 12);
LB_ASSERT_OFFSET(struct lb4_key, dport, 4);
LB_ASSERT_OFFSET(struct lb4_key, backend_slot, 6);
LB_ASSERT_OFFSET(struct lb4_key, proto, 8);
LB_ASSERT_OFFSET(struct lb4_key, scope, 9);
LB_ASSERT_OFFSET(struct lb4_key, pad, 10);

LB_ASSERT_SIZE(struct lb4_service, 12);
LB_ASSERT_OFFSET(struct lb4_service, affinity_timeout, 0);
LB_ASSERT_OFFSET(struct lb4_service, count, 4);
LB_ASSERT_OFFSET(struct lb4_service, rev_nat_index, 6);
LB_ASSERT_OFFSET(struct lb4_service, flags, 8);
LB_ASSERT_OFFSET(struct lb4_service, flags2, 9);
LB_ASSERT_OFFSET(struct lb4_service, pad, 10);

LB_ASSERT_SIZE(struct lb4_backend, 12);
LB_ASSERT_OFFSET(struct lb4_backend, port, 4);
LB_ASSERT_OFFSET(struct lb4_backend, proto, 6);
LB_ASSERT_OFFSET(struct lb4_backend, flags, 7);
LB_ASSERT_OFFSET(struct lb4_backend, cluster_id, 8);
LB_ASSERT_OFFSET(struct lb4_backend, pad, 9);

LB_ASSERT_SIZE(struct lb4_reverse_nat, 6);
LB_ASSERT_OFFSET(struct lb4_reverse_nat, port, 4);

LB_ASSERT_SIZE(union lb4_affinity_client_id, 8);
LB_ASSERT_SIZE(struct lb4_affinity_key, 16);
LB_ASSERT_OFFSET(struct lb4_affinity_key, rev_nat_id, 8);
LB_ASSERT_OFFSET(struct lb4_affinity_key, pad1, 11);
LB_ASSERT_OFFSET(struct lb4_affinity_key, pad2, 12);

LB_ASSERT_SIZE(struct lb_affinity_val, 16);
LB_ASSERT_OFFSET(struct lb_affinity_val, backend_id, 8);
LB_ASSERT_OFFSET(struct lb_affinity_val, pad, 12);

LB_ASSERT_SIZE(struct lb_affinity_match, 8);
LB_ASSERT_OFFSET(struct lb_affinity_match, rev_nat_id, 4);
LB_ASSERT_OFFSET(struct lb_affinity_match, pad, 6);

LB_ASSERT_SIZE(struct lb4_sock_rev_key, 16);
LB_ASSERT_OFFSET(struct lb4_sock_rev_key, address, 8);
LB_ASSERT_OFFSET(struct lb4_sock_rev_key, port, 12);
LB_ASSERT_OFFSET(struct lb4_sock_rev_key, pad, 14);

LB_ASSERT_SIZE(struct lb4_sock_rev_entry, 8);
LB_ASSERT_OFFSET(struct lb4_sock_rev_entry, port, 4);
LB_ASSERT_OFFSET(struct lb4_sock_rev_entry, rev_nat_index, 6);
