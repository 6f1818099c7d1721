/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bpf_host.c - datapath of the node's underlay device (the device other
 * nodes reach it through), loaded once per node.
 *
 *   cil_from_netdev  tc ingress of the underlay device: a plain IPv4 packet
 *                    for a local endpoint (native routing from another
 *                    node) goes straight to the endpoint's handle_policy
 *                    (cilium_call_policy), which looks the source identity
 *                    up in the ipcache for new connections and traces only
 *                    (an identity of 0 in cb[]), so the node neither routes
 *                    it nor sends it through the pod's veth. Everything
 *                    else (ARP, the node's own traffic, VXLAN for the
 *                    tunnel device, non-IPv4) passes to the stack
 *                    untouched.
 *
 * It shares the node-wide pinned maps with bpf_lxc.c.
 */
#include <linux/ip.h>

#include "lib/common.h"
#include "lib/eth.h"
#include "lib/ipv4.h"
#include "lib/maps.h"
#include "lib/metrics.h"
#include "lib/events.h"
#include "lib/trace.h"
#include "lib/drop.h"
#include "lib/ipcache.h"
#include "lib/local_delivery.h"

#define THIS_SOURCE_FILE	SOURCE_FILE_BPF_HOST

/* Trace notifications of a device carry no endpoint id. */
#define HOST_SOURCE_ID	0

/* TRACE_AGGREGATE_* level of trace notifications. */
volatile const __u32 MONITOR_AGGREGATION = TRACE_AGGREGATE_ACTIVE_CT;

static __always_inline int handle_ipv4_from_netdev(struct __sk_buff *ctx,
						   __u32 *src_label,
						   __u32 *dst_id)
{
	struct endpoint_info *ep;
	struct iphdr *ip4;

	/* Malformed packets are the stack's to judge, as before. */
	if (IS_DROP(ipv4_load(ctx, &ip4)))
		return TC_ACT_OK;

	ep = lookup_ip4_endpoint(ip4->daddr);
	if (!ep || (ep->flags & ENDPOINT_F_HOST))
		return TC_ACT_OK;

	*dst_id = ep->lxc_id;
	if (trace_wanted(MONITOR_AGGREGATION, TRACE_FROM_NETWORK, NULL)) {
		*src_label = ipcache_source_identity4(ip4->saddr);
		send_trace_notify(ctx, MONITOR_AGGREGATION, TRACE_FROM_NETWORK,
				  HOST_SOURCE_ID, *src_label, 0, 0,
				  ctx->ifindex, NULL);
	}
	return tail_call_policy(ctx, ep->lxc_id, *src_label);
}

SEC("classifier/from-netdev")
int cil_from_netdev(struct __sk_buff *ctx)
{
	__u32 src_label = 0;
	__u32 dst_id = 0;
	int ret;

	if (ctx->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;

	ret = handle_ipv4_from_netdev(ctx, &src_label, &dst_id);
	if (IS_DROP(ret))
		return send_drop_notify(ctx, HOST_SOURCE_ID, src_label, 0,
					dst_id, ret, METRIC_INGRESS);
	return ret;
}

char __license[] SEC("license") = "Dual BSD/GPL";
