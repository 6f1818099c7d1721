/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fib.h - forward a packet out of the node without going through the
 * stack: by the kernel's routing table (a FIB lookup from BPF, L2 rewrite or
 * neighbour resolution by the kernel, a redirect to the egress device), or
 * to a next hop already known (neighbour resolution and transmit by the
 * kernel). Native routing uses them for pods on other nodes.
 */
#pragma once

#include <linux/ip.h>

#include "common.h"
#include "drop.h"
#include "ipv4.h"

#ifndef AF_INET
#define AF_INET		2
#endif

/* fib_redirect4() could not forward: let the stack handle the packet. */
#define FIB_TO_STACK	1

/**
 * fib_redirect4 - route an IPv4 packet and send it out of the egress device
 * @ctx: packet context, at tc ingress of the device it arrived on
 * @ip4: validated IPv4 header (invalid after the call)
 * @oif: set to the egress ifindex when the packet was redirected
 *
 * Looks the destination up in the node's routing tables as if the packet
 * had been received on ctx->ingress_ifindex. With a resolved neighbour the
 * MACs are rewritten and the packet redirected; with an unresolved one the
 * kernel resolves it (bpf_redirect_neigh towards the route's gateway). The
 * TTL is decremented either way.
 *
 * Returns the redirect verdict, FIB_TO_STACK when the packet is not
 * forwardable this way (no route, local destination, forwarding disabled,
 * too big, ...) and the packet is unchanged, or a negative DROP_* code.
 */
static __always_inline int fib_redirect4(struct __sk_buff *ctx,
					 struct iphdr *ip4, __u32 *oif)
{
	struct bpf_fib_lookup fib = {
		.family = AF_INET,
		.tos = ip4->tos,
		.l4_protocol = ip4->protocol,
		.tot_len = bpf_ntohs(ip4->tot_len),
		.ipv4_src = ip4->saddr,
		.ipv4_dst = ip4->daddr,
		.ifindex = ctx->ingress_ifindex,
	};
	struct bpf_redir_neigh nh = {};
	struct ethhdr *eth;
	long rc;
	int ret;

	/* The stack answers with ICMP time exceeded. */
	if (ip4->ttl <= 1)
		return FIB_TO_STACK;

	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return FIB_TO_STACK;

	ret = ipv4_dec_ttl(ip4);
	if (IS_DROP(ret))
		return ret;
	*oif = fib.ifindex;

	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		/* After the lookup ipv4_dst holds the next hop. */
		nh.nh_family = AF_INET;
		nh.ipv4_nh = fib.ipv4_dst;
		return bpf_redirect_neigh(fib.ifindex, &nh, sizeof(nh), 0);
	}

	if (!ctx_pull(ctx, ETH_HLEN))
		return DROP_INVALID;
	eth = (void *)(long)ctx->data;
	if ((void *)(eth + 1) > (void *)(long)ctx->data_end)
		return DROP_INVALID;
	__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
	return bpf_redirect(fib.ifindex, 0);
}

/**
 * neigh_redirect4 - send an IPv4 packet to a known next hop on a known device
 * @ip4: validated IPv4 header, directly writable
 * @ifindex: egress device
 * @nexthop: next-hop IPv4 address on that device, network byte order
 *
 * Skips the routing lookup fib_redirect4() does: the kernel resolves
 * @nexthop's neighbour on @ifindex, writes the L2 header and transmits. The
 * TTL is decremented. No MTU check: the pods' MTU is the node's. Returns
 * the redirect verdict, FIB_TO_STACK for a packet whose TTL runs out (the
 * stack answers it), or a negative DROP_*.
 */
static __always_inline int neigh_redirect4(struct iphdr *ip4, __u32 ifindex,
					   __be32 nexthop)
{
	struct bpf_redir_neigh nh = {
		.nh_family = AF_INET,
		.ipv4_nh = nexthop,
	};
	int ret;

	if (ip4->ttl <= 1)
		return FIB_TO_STACK;
	ret = ipv4_dec_ttl(ip4);
	if (IS_DROP(ret))
		return ret;
	return bpf_redirect_neigh(ifindex, &nh, sizeof(nh), 0);
}
