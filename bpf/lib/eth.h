/* SPDX-License-Identifier: Apache-2.0 */
/*
 * eth.h - Ethernet addresses and L2 header rewriting.
 */
#pragma once

#include "common.h"

/*
 * A MAC address padded to 8 bytes (4-byte aligned), the layout used in
 * map values. Only addr[0..6] is meaningful.
 */
union macaddr {
	struct {
		__u32	p1;
		__u16	p2;
	};
	__u8	addr[6];
};

/**
 * mac_from_config - copy a 6-byte MAC held in a load-time global
 * @dst: destination (6 bytes)
 * @src: the `volatile const` global
 */
static __always_inline void mac_from_config(__u8 *dst, const volatile __u8 *src)
{
#pragma unroll
	for (int i = 0; i < ETH_ALEN; i++)
		dst[i] = src[i];
}

/**
 * eth_rewrite - set both MAC addresses of an Ethernet header
 * @eth: header inside the packet
 * @dst: new destination MAC (global)
 * @src: new source MAC (global)
 */
static __always_inline void eth_rewrite(struct ethhdr *eth,
					const volatile __u8 *dst,
					const volatile __u8 *src)
{
	mac_from_config(eth->h_dest, dst);
	mac_from_config(eth->h_source, src);
}
