/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ipv4.h - IPv4 header validation, L4 offset and TTL handling.
 */
#pragma once

#include <linux/ip.h>
#include <linux/in.h>

#include "common.h"
#include "drop.h"

#define IP_MF		0x2000
#define IP_OFFSET	0x1FFF

/**
 * ipv4_load - validate the IPv4 header after the Ethernet header
 * @ctx: packet context
 * @ip4: set to the header on success
 *
 * Checks version, IHL >= 5, that the whole header (with options) is in
 * the packet and that tot_len fits the packet. Returns 0 or DROP_INVALID.
 */
static __always_inline int ipv4_load(struct __sk_buff *ctx, struct iphdr **ip4)
{
	struct iphdr *ip;
	void *data, *data_end;
	__u32 hlen, tot_len;

	if (!ctx_pull(ctx, ETH_HLEN + sizeof(struct iphdr)))
		return DROP_INVALID;

	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	ip = data + ETH_HLEN;
	if ((void *)(ip + 1) > data_end)
		return DROP_INVALID;
	if (ip->version != 4 || ip->ihl < 5)
		return DROP_INVALID;

	hlen = ip->ihl * 4;
	tot_len = bpf_ntohs(ip->tot_len);
	if (tot_len < hlen || ETH_HLEN + tot_len > ctx->len)
		return DROP_INVALID;

	if (hlen > sizeof(struct iphdr)) {
		if (!ctx_pull(ctx, ETH_HLEN + hlen))
			return DROP_INVALID;
		data = (void *)(long)ctx->data;
		data_end = (void *)(long)ctx->data_end;
		ip = data + ETH_HLEN;
		if ((void *)(ip + 1) > data_end)
			return DROP_INVALID;
	}

	*ip4 = ip;
	return 0;
}

/**
 * ipv4_l4_offset - offset of the L4 header from the start of the packet
 */
static __always_inline __u32 ipv4_l4_offset(const struct iphdr *ip4)
{
	return ETH_HLEN + ip4->ihl * 4;
}

/**
 * ipv4_is_later_fragment - true for fragments other than the first one,
 * which carry no L4 header
 */
static __always_inline bool ipv4_is_later_fragment(const struct iphdr *ip4)
{
	return (bpf_ntohs(ip4->frag_off) & IP_OFFSET) != 0;
}

/**
 * ipv4_dec_ttl - decrement the TTL and fix the header checksum
 * @ip4: validated header, directly writable
 *
 * The checksum is updated incrementally (RFC 1624) in place, without a
 * helper call: the TTL is the high byte of its 16-bit header word, so the
 * one's complement sum drops by 0x0100 and the checksum grows by as much,
 * with the end-around carry. Returns 0, or DROP_TTL_EXCEEDED when the
 * packet must not be forwarded.
 */
static __always_inline int ipv4_dec_ttl(struct iphdr *ip4)
{
	__u32 check;

	if (ip4->ttl <= 1)
		return DROP_TTL_EXCEEDED;

	check = (__u32)ip4->check + bpf_htons(0x0100);
	ip4->check = (__sum16)(check + (check >= 0xFFFF));
	ip4->ttl--;
	return 0;
}
