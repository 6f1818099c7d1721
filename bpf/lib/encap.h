/* SPDX-License-Identifier: Apache-2.0 */
/*
 * encap.h - the security identity on the wire between nodes in tunnel
 * mode: the sender puts its endpoint's identity in the 24-bit VXLAN VNI,
 * either by wrapping the packet itself (vxlan_encap4) or through the tunnel
 * key and the tunnel device, which runs in external (collect_md) mode; the
 * receiver reads it back from the key, or, for the packets the nodes send
 * to a local pod, from the VXLAN header itself before the stack sees them
 * (vxlan_parse4, vxlan_decap4).
 */
#pragma once

#include <linux/ip.h>
#include <linux/udp.h>

#include "common.h"
#include "drop.h"
#include "ipv4.h"

/* Routing modes (the ROUTING_MODE global of bpf_lxc.c). */
#define ROUTING_MODE_NATIVE	0	/* remote traffic goes to the stack */
#define ROUTING_MODE_TUNNEL	1	/* remote traffic is encapsulated */

/* Width of the VNI, and so of an identity on the wire. */
#define TUNNEL_ID_MASK		0x00FFFFFF
/*
 * Scope byte of an identity: non-zero for node-local (CIDR, FQDN) and
 * remote-node scoped identities, which the 24-bit VNI cannot carry.
 */
#define IDENTITY_SCOPE_MASK	0xFF000000

#define TUNNEL_TTL		64

/*
 * Whether the VNI can carry @seclabel: sending an identity with a scope byte
 * truncated would hand the receiver another identity.
 */
static __always_inline bool encap_identity_fits(__u32 seclabel)
{
	return !(seclabel & IDENTITY_SCOPE_MASK);
}

/**
 * encap_set_tunnel_key4 - ask the tunnel device to encapsulate towards a node
 * @ctx: packet context
 * @tunnel_endpoint: underlay IPv4 of the destination node, network order
 * @seclabel: security identity of the sender, carried in the VNI
 *
 * Returns 0, DROP_INVALID_IDENTITY for an identity that does not fit the
 * VNI (sending it truncated would hand the receiver another identity), or
 * DROP_WRITE_ERROR when the kernel refused the key.
 */
static __always_inline int encap_set_tunnel_key4(struct __sk_buff *ctx,
						 __be32 tunnel_endpoint,
						 __u32 seclabel)
{
	struct bpf_tunnel_key key = {};

	if (!encap_identity_fits(seclabel))
		return DROP_INVALID_IDENTITY;

	/* bpf_tunnel_key carries the remote address in host byte order. */
	key.remote_ipv4 = bpf_ntohl(tunnel_endpoint);
	key.tunnel_id = seclabel;
	key.tunnel_ttl = TUNNEL_TTL;
	if (bpf_skb_set_tunnel_key(ctx, &key, sizeof(key),
				   BPF_F_ZERO_CSUM_TX) < 0)
		return DROP_WRITE_ERROR;
	return 0;
}

/**
 * decap_source_identity - the sender's identity from a received tunnel key
 * @ctx: packet context, on the ingress of the tunnel device
 * @identity: set to the identity carried in the VNI
 *
 * Returns 0, DROP_NO_TUNNEL_KEY when the packet carries no tunnel
 * metadata, or DROP_INVALID_IDENTITY for the host identity: a sending node
 * never puts its own host identity on the wire, so that is a spoof.
 */
static __always_inline int decap_source_identity(struct __sk_buff *ctx,
						 __u32 *identity)
{
	struct bpf_tunnel_key key = {};

	if (bpf_skb_get_tunnel_key(ctx, &key, sizeof(key), 0) < 0)
		return DROP_NO_TUNNEL_KEY;
	*identity = key.tunnel_id & TUNNEL_ID_MASK;
	if (*identity == HOST_ID)
		return DROP_INVALID_IDENTITY;
	return 0;
}

/* VXLAN header (RFC 7348): flags, 24 reserved bits, VNI, 8 reserved bits. */
struct vxlan_hdr {
	__be32	flags;
	__be32	vni;
};

/* The flags word of a VXLAN header: only I ("the VNI is valid") set. */
#define VXLAN_FLAGS_VNI		bpf_htonl(0x08000000)
/* The low byte of the VNI word is reserved. */
#define VXLAN_VNI_RESERVED	bpf_htonl(0x000000FF)

/* Outer IPv4 (no options), UDP and VXLAN headers and the inner Ethernet header. */
#define VXLAN_ENCAP_LEN		(sizeof(struct iphdr) + sizeof(struct udphdr) + \
				 sizeof(struct vxlan_hdr) + ETH_HLEN)

/* ECN field of the IPv4 TOS byte, and its "congestion experienced" value. */
#define IPV4_ECN_MASK		0x03
#define IPV4_ECN_CE		0x03

/**
 * struct vxlan_packet - what vxlan_parse4() read from a VXLAN packet
 * @outer_daddr: the node it was sent to (network order)
 * @inner_daddr: the destination of the packet inside (network order)
 * @identity: the sender's identity, from the VNI
 */
struct vxlan_packet {
	__be32	outer_daddr;
	__be32	inner_daddr;
	__u32	identity;
};

/*
 * The one's complement sum of the 20-byte IPv4 header @ip4's ten 16-bit
 * words, folded to 16 bits (byte order does not matter). Summed inline,
 * without a helper call.
 */
static __always_inline __u16 ipv4_hdr_sum(const struct iphdr *ip4)
{
	const __u16 *word = (const __u16 *)ip4;
	__u32 sum = 0;
	int i;

#pragma unroll
	for (i = 0; i < (int)(sizeof(*ip4) / sizeof(__u16)); i++)
		sum += word[i];
	sum = (sum & 0xFFFF) + (sum >> 16);
	sum = (sum & 0xFFFF) + (sum >> 16);
	return (__u16)sum;
}

/*
 * Whether the 20-byte IPv4 header @ip4 (in the packet, bounds checked) has
 * a valid checksum: its words add up to 0xFFFF.
 */
static __always_inline bool ipv4_csum_valid(const struct iphdr *ip4)
{
	return ipv4_hdr_sum(ip4) == 0xFFFF;
}

/**
 * vxlan_parse4 - read a VXLAN packet the receiver may decapsulate itself
 * @ctx: packet context, an IPv4 UDP packet to the tunnel port
 * @vx: receives the addresses and the identity
 *
 * True only for what the nodes send a pod's packet as: not
 * GSO; an outer header without options, not fragmented, not CE-marked
 * (RFC 6040 decapsulation is the kernel's), with a valid checksum and the
 * frame's exact length; a UDP datagram filling it with a zero checksum
 * (the nodes send none); VXLAN flags with only the VNI bit
 * and the reserved byte clear; an inner IPv4 header. Everything else is
 * left to the kernel's VXLAN receive path, which judges it. Invalidates
 * packet pointers.
 */
static __always_inline bool vxlan_parse4(struct __sk_buff *ctx,
					 struct vxlan_packet *vx)
{
	struct vxlan_hdr *vxh;
	struct ethhdr *inner_eth;
	struct iphdr *outer, *inner;
	struct udphdr *udp;
	void *data, *data_end;

	if (ctx->gso_size)
		return false;
	if (!ctx_pull(ctx, ETH_HLEN + VXLAN_ENCAP_LEN + sizeof(*inner)))
		return false;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	outer = data + ETH_HLEN;
	udp = (void *)(outer + 1);
	vxh = (void *)(udp + 1);
	inner_eth = (void *)(vxh + 1);
	inner = (void *)(inner_eth + 1);
	if ((void *)(inner + 1) > data_end)
		return false;

	if (outer->ihl != 5 ||
	    (outer->frag_off & bpf_htons(IP_MF | IP_OFFSET)) ||
	    (outer->tos & IPV4_ECN_MASK) == IPV4_ECN_CE ||
	    ETH_HLEN + bpf_ntohs(outer->tot_len) != ctx->len ||
	    !ipv4_csum_valid(outer))
		return false;
	if (udp->check ||
	    bpf_ntohs(udp->len) != bpf_ntohs(outer->tot_len) - sizeof(*outer))
		return false;
	if (vxh->flags != VXLAN_FLAGS_VNI || (vxh->vni & VXLAN_VNI_RESERVED))
		return false;
	if (inner_eth->h_proto != bpf_htons(ETH_P_IP))
		return false;

	vx->outer_daddr = outer->daddr;
	vx->inner_daddr = inner->daddr;
	vx->identity = bpf_ntohl(vxh->vni) >> 8;
	return true;
}

/**
 * vxlan_decap4 - strip what vxlan_parse4() accepted down to the inner IPv4
 * packet behind the outer Ethernet header
 * @ctx: packet context
 *
 * Returns false when the kernel refused; the packet is then unchanged.
 */
static __always_inline bool vxlan_decap4(struct __sk_buff *ctx)
{
	return bpf_skb_adjust_room(ctx, -(__s32)VXLAN_ENCAP_LEN,
				   BPF_ADJ_ROOM_MAC, 0) == 0;
}

/* What vxlan_encap4() puts between the outer Ethernet header and the packet. */
struct vxlan_encap_hdr {
	struct iphdr	ip;
	struct udphdr	udp;
	struct vxlan_hdr vx;
	struct ethhdr	inner_eth;
} __attribute__((packed));

_Static_assert(sizeof(struct vxlan_encap_hdr) == VXLAN_ENCAP_LEN,
	       "VXLAN encapsulation is 50 bytes");

/*
 * The UDP source ports a kernel VXLAN device spreads flows over by default
 * (the ephemeral range, 32768-60999), as [min, max).
 */
#define VXLAN_SPORT_MIN		32768
#define VXLAN_SPORT_MAX		61000

/* vxlan_encap4() left the packet as it was: the tunnel device must send it. */
#define VXLAN_ENCAP_DECLINED	1

/* The ECT(0) codepoint of the ECN field. */
#define IPV4_ECN_ECT0		0x02

/*
 * The outer TOS byte for an inner one (RFC 6040, normal mode, as the
 * kernel's tunnels do): DSCP 0, the inner ECN field, ECT(0) for CE.
 */
static __always_inline __u8 vxlan_outer_tos(__u8 inner_tos)
{
	__u8 ecn = inner_tos & IPV4_ECN_MASK;

	return ecn == IPV4_ECN_CE ? IPV4_ECN_ECT0 : ecn;
}

/*
 * The outer UDP source port of a flow, from its hash, spread over the range
 * as the kernel's udp_flow_src_port() does, so the underlay can balance
 * flows between two nodes.
 */
static __always_inline __be16 vxlan_src_port(struct __sk_buff *ctx)
{
	__u32 hash = bpf_get_hash_recalc(ctx);

	hash ^= hash << 16;
	return bpf_htons((__u16)((((__u64)hash) *
				  (VXLAN_SPORT_MAX - VXLAN_SPORT_MIN)) >> 32) +
			 VXLAN_SPORT_MIN);
}

/**
 * vxlan_encap4 - wrap a pod's IPv4 packet in VXLAN towards another node,
 * as the node's tunnel device would
 * @ctx: packet context: Ethernet and IPv4, as the pod sent it
 * @saddr: this node's underlay address (network order)
 * @daddr: the other node's underlay address (network order)
 * @identity: the sender's identity, the VNI (it fits: checked by the caller)
 * @dport: the tunnel port (network order)
 *
 * Inserts an outer IPv4 header (no options, DF clear, TTL TUNNEL_TTL, ECN
 * after RFC 6040), UDP with a zero checksum, VXLAN with only the VNI flag,
 * and the pod's Ethernet header as the inner one, after the Ethernet header,
 * which becomes the outer one for the caller's redirect to fill in.
 * Segmentation offload packets keep their segment size (the pods' MTU
 * leaves room for the headers) and are segmented as UDP tunnel packets.
 *
 * Returns 0, VXLAN_ENCAP_DECLINED with the packet unchanged (too long for
 * an outer IPv4 header, or refused by the kernel), or a negative DROP_*.
 */
static __always_inline int vxlan_encap4(struct __sk_buff *ctx, __be32 saddr,
					__be32 daddr, __u32 identity,
					__be16 dport)
{
	struct vxlan_encap_hdr hdr = {};
	struct iphdr outer = {};
	struct ethhdr *eth;
	struct iphdr *inner;
	void *data, *data_end;
	__u32 outer_len;

	if (!ctx_pull(ctx, ETH_HLEN + sizeof(*inner)))
		return DROP_INVALID;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	inner = (void *)(eth + 1);
	if ((void *)(inner + 1) > data_end)
		return DROP_INVALID;
	outer_len = ctx->len - ETH_HLEN + VXLAN_ENCAP_LEN;
	if (outer_len > 0xFFFF)
		return VXLAN_ENCAP_DECLINED;

	outer.version = 4;
	outer.ihl = 5;
	outer.tos = vxlan_outer_tos(inner->tos);
	outer.tot_len = bpf_htons(outer_len);
	outer.id = (__be16)bpf_get_prandom_u32();
	outer.ttl = TUNNEL_TTL;
	outer.protocol = IPPROTO_UDP;
	outer.saddr = saddr;
	outer.daddr = daddr;
	outer.check = (__sum16)~ipv4_hdr_sum(&outer);
	hdr.ip = outer;
	hdr.udp.source = vxlan_src_port(ctx);
	hdr.udp.dest = dport;
	hdr.udp.len = bpf_htons(outer_len - sizeof(outer));
	hdr.vx.flags = VXLAN_FLAGS_VNI;
	hdr.vx.vni = bpf_htonl(identity << 8);
	__builtin_memcpy(&hdr.inner_eth, eth, ETH_HLEN);

	if (bpf_skb_adjust_room(ctx, VXLAN_ENCAP_LEN, BPF_ADJ_ROOM_MAC,
				BPF_F_ADJ_ROOM_FIXED_GSO |
				BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 |
				BPF_F_ADJ_ROOM_ENCAP_L4_UDP |
				BPF_F_ADJ_ROOM_ENCAP_L2_ETH |
				BPF_F_ADJ_ROOM_ENCAP_L2(ETH_HLEN)) < 0)
		return VXLAN_ENCAP_DECLINED;
	if (bpf_skb_store_bytes(ctx, ETH_HLEN, &hdr, sizeof(hdr), 0) < 0)
		return DROP_WRITE_ERROR;
	return 0;
}
