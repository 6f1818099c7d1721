/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ipcache.h - the cluster's IP -> (security identity, tunnel endpoint)
 * table, cilium_ipcache: an LPM trie the agent fills with every known
 * address and prefix of the cluster, read by the datapath to learn the
 * identity behind a remote address and the node that hosts it.
 *
 * Layout of Cilium's v1 map (cilium_ipcache): the key starts with the LPM
 * prefix length, then 32 bits that every lookup matches exactly (cluster
 * id, padding, address family), then the address. A prefix length is
 * therefore IPCACHE_STATIC_PREFIX_BITS + the IP prefix length.
 */
#pragma once

#include "common.h"
#include "maps.h"

#define IPCACHE_MAP_SIZE		512000

/* Key bits before the address: cluster_id, pad1 and family. */
#define IPCACHE_STATIC_PREFIX_BITS	32
#define IPCACHE_PREFIX_LEN(ip_bits)	(IPCACHE_STATIC_PREFIX_BITS + (ip_bits))

/* remote_endpoint_info.flags (Cilium's numbering). */
#define FLAG_SKIP_TUNNEL	1	/* never encapsulate towards it */
#define FLAG_HAS_TUNNEL_EP	2	/* tunnel_endpoint is set */
#define FLAG_IPV6_TUNNEL_EP	4	/* tunnel endpoint is IPv6 (unused) */
#define FLAG_REMOTE_CLUSTER	8	/* lives in another cluster */

struct ipcache_key {
	struct bpf_lpm_trie_key_hdr lpm_key;
	__u16	cluster_id;
	__u8	pad1;
	__u8	family;
	union {
		struct {
			__be32	ip4;
			__u32	pad4;
			__u32	pad5;
			__u32	pad6;
		};
		__u8	ip6[16];
	};
};

struct remote_endpoint_info {
	__u32	sec_identity;
	__be32	tunnel_endpoint;	/* underlay IPv4 of the owning node */
	__u16	node_id;
	__u8	key;			/* IPsec key index */
	__u8	flags;			/* FLAG_* */
};

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, struct ipcache_key);
	__type(value, struct remote_endpoint_info);
	__uint(max_entries, IPCACHE_MAP_SIZE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cilium_ipcache SEC(".maps");

/**
 * ipcache_lookup4 - longest-prefix match of @addr in cilium_ipcache
 * @addr: IPv4 address, network byte order
 *
 * Returns the entry of the most specific prefix holding @addr (the /32 of
 * a pod, else a CIDR entry), or NULL when the cluster does not know it.
 */
static __always_inline struct remote_endpoint_info *ipcache_lookup4(__be32 addr)
{
	struct ipcache_key key = {
		.lpm_key.prefixlen = IPCACHE_PREFIX_LEN(32),
		.family = ENDPOINT_KEY_IPV4,
		.ip4 = addr,
	};

	return bpf_map_lookup_elem(&cilium_ipcache, &key);
}

/**
 * ipcache_node_ip4 - the node hosting an entry, if the entry names one
 * @info: an ipcache entry
 *
 * Returns the underlay IPv4 address (network byte order) of that node, or 0
 * when the entry names none (or an IPv6 one).
 */
static __always_inline __be32
ipcache_node_ip4(const struct remote_endpoint_info *info)
{
	if (!(info->flags & FLAG_HAS_TUNNEL_EP) ||
	    (info->flags & FLAG_IPV6_TUNNEL_EP))
		return 0;
	return info->tunnel_endpoint;
}

/**
 * ipcache_tunnel_endpoint4 - the node to encapsulate towards, if any
 * @info: an ipcache entry
 *
 * Returns the underlay IPv4 address (network byte order) of the node that
 * hosts the entry, or 0 when the entry has none or must not be tunnelled.
 */
static __always_inline __be32
ipcache_tunnel_endpoint4(const struct remote_endpoint_info *info)
{
	if (info->flags & FLAG_SKIP_TUNNEL)
		return 0;
	return ipcache_node_ip4(info);
}

/**
 * ipcache_source_identity4 - security identity of a packet's source
 * @saddr: source IPv4 address, network byte order
 *
 * The ipcache's identity for an address the cluster knows, world for any
 * other.
 */
static __always_inline __u32 ipcache_source_identity4(__be32 saddr)
{
	struct remote_endpoint_info *remote = ipcache_lookup4(saddr);

	if (remote && remote->sec_identity)
		return remote->sec_identity;
	return WORLD_ID;
}
