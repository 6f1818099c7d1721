/* SPDX-License-Identifier: Apache-2.0 */
/*
 * encap.h - the security identity on the wire between nodes in tunnel
 * mode: the sender puts its endpoint's identity in the tunnel key (the
 * 24-bit VXLAN VNI) and redirects to the tunnel device, which runs in
 * external (collect_md) mode; the receiver reads it back from the key.
 */
#pragma once

#include "common.h"
#include "drop.h"

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

	if (seclabel & IDENTITY_SCOPE_MASK)
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
