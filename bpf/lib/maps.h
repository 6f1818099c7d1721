/* SPDX-License-Identifier: Apache-2.0 */
/*
 * maps.h - node-wide endpoint maps: the local endpoint table (cilium_lxc)
 * and the per-endpoint policy program array (cilium_call_policy).
 */
#pragma once

#include "common.h"
#include "eth.h"

#define ENDPOINT_KEY_IPV4	1
#define ENDPOINT_KEY_IPV6	2

/* endpoint_info.flags: the address belongs to the host (router IP). */
#define ENDPOINT_F_HOST		1

#define ENDPOINTS_MAP_SIZE	65535
#define POLICY_PROG_MAP_SIZE	4096

struct endpoint_key {
	union {
		struct {
			__be32	ip4;
			__u32	pad1;
			__u32	pad2;
			__u32	pad3;
		};
		__u8	ip6[16];
	};
	__u8	family;
	__u8	key;
	__u8	cluster_id;
	__u8	pad5;
};

struct endpoint_info {
	__u32		ifindex;
	__u16		unused;
	__u16		lxc_id;
	__u32		flags;
	union macaddr	mac;
	union macaddr	node_mac;
	__u32		pad[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct endpoint_key);
	__type(value, struct endpoint_info);
	__uint(max_entries, ENDPOINTS_MAP_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_lxc SEC(".maps");

/* Indexed by endpoint id; holds that endpoint's handle_policy program. */
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
	__uint(max_entries, POLICY_PROG_MAP_SIZE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_call_policy SEC(".maps");

/**
 * lookup_ip4_endpoint - find the local endpoint (or host IP) owning @ip4
 */
static __always_inline struct endpoint_info *lookup_ip4_endpoint(__be32 ip4)
{
	struct endpoint_key key = {
		.ip4 = ip4,
		.family = ENDPOINT_KEY_IPV4,
	};

	return bpf_map_lookup_elem(&cilium_lxc, &key);
}
