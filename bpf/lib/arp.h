/* SPDX-License-Identifier: Apache-2.0 */
/*
 * arp.h - ARP responder: answer an endpoint's ARP requests with the node's
 * MAC so that all of its traffic is sent to the host-side veth.
 */
#pragma once

#include <linux/if_arp.h>

#include "common.h"
#include "eth.h"

/* An Ethernet/IPv4 ARP packet after the Ethernet header. */
struct arp_eth4 {
	struct arphdr	hdr;
	__u8		sha[ETH_ALEN];
	__be32		sip;
	__u8		tha[ETH_ALEN];
	__be32		tip;
} __attribute__((packed));

/**
 * arp_load_request - find an Ethernet/IPv4 ARP request in the packet
 * @ctx: packet context
 * @eth: set to the Ethernet header
 * @arp: set to the ARP payload
 *
 * Returns false for anything that is not a well-formed ARP request.
 */
static __always_inline bool arp_load_request(struct __sk_buff *ctx,
					     struct ethhdr **eth,
					     struct arp_eth4 **arp)
{
	void *data, *data_end;
	struct arp_eth4 *a;

	if (!ctx_pull(ctx, ETH_HLEN + sizeof(struct arp_eth4)))
		return false;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	a = data + ETH_HLEN;
	if ((void *)(a + 1) > data_end)
		return false;

	if (a->hdr.ar_hrd != bpf_htons(ARPHRD_ETHER) ||
	    a->hdr.ar_pro != bpf_htons(ETH_P_IP) ||
	    a->hdr.ar_hln != ETH_ALEN || a->hdr.ar_pln != sizeof(__be32) ||
	    a->hdr.ar_op != bpf_htons(ARPOP_REQUEST))
		return false;

	*eth = data;
	*arp = a;
	return true;
}

/**
 * arp_make_reply - turn a request into the reply, in place
 * @eth: Ethernet header of the request
 * @arp: ARP payload of the request
 * @mac: MAC address that answers (global)
 *
 * The reply goes back to the requester and claims that the requested
 * address (arp->tip) is at @mac.
 */
static __always_inline void arp_make_reply(struct ethhdr *eth,
					   struct arp_eth4 *arp,
					   const volatile __u8 *mac)
{
	__be32 requested = arp->tip;
	__be32 requester = arp->sip;

	__builtin_memcpy(eth->h_dest, arp->sha, ETH_ALEN);
	mac_from_config(eth->h_source, mac);

	arp->hdr.ar_op = bpf_htons(ARPOP_REPLY);
	__builtin_memcpy(arp->tha, arp->sha, ETH_ALEN);
	arp->tip = requester;
	mac_from_config(arp->sha, mac);
	arp->sip = requested;
}
