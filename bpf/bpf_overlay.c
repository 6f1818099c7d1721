/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bpf_overlay.c - datapath of the node's tunnel device (cilium_vxlan, a
 * VXLAN device in external mode), loaded once per node.
 *
 *   cil_from_overlay  tc ingress of the tunnel device: decapsulated packets
 *                     from other nodes. The source identity is the one the
 *                     sender put in the VNI; packets for a local endpoint go
 *                     to its handle_policy (cilium_call_policy), anything
 *                     else to the node's stack.
 *   cil_to_overlay    tc egress of the tunnel device: pods' traffic arrives
 *                     with its tunnel key set by bpf_lxc and passes; what
 *                     the node's stack routes here (the node reaching
 *                     another node's pods in tunnel mode) gets the key of
 *                     the destination's node from the ipcache, with the
 *                     remote-node identity (6) in the VNI.
 *
 * It shares the node-wide pinned maps with bpf_lxc.c.
 */
#include <linux/if_packet.h>
#include <linux/ip.h>

#include "lib/common.h"
#include "lib/eth.h"
#include "lib/ipv4.h"
#include "lib/maps.h"
#include "lib/metrics.h"
#include "lib/events.h"
#include "lib/trace.h"
#include "lib/drop.h"
#include "lib/encap.h"
#include "lib/ipcache.h"
#include "lib/local_delivery.h"

#define THIS_SOURCE_FILE	SOURCE_FILE_BPF_OVERLAY

/* Trace notifications of a device carry no endpoint id. */
#define OVERLAY_SOURCE_ID	0

/* TRACE_AGGREGATE_* level of trace notifications. */
volatile const __u32 MONITOR_AGGREGATION = TRACE_AGGREGATE_ACTIVE_CT;

static __always_inline int handle_ipv4_from_overlay(struct __sk_buff *ctx,
						    __u32 *src_label,
						    __u32 *dst_id)
{
	struct endpoint_info *ep;
	struct iphdr *ip4;
	int ret;

	ret = decap_source_identity(ctx, src_label);
	if (IS_DROP(ret))
		return ret;
	send_trace_notify(ctx, MONITOR_AGGREGATION, TRACE_FROM_OVERLAY,
			  OVERLAY_SOURCE_ID, *src_label, 0, 0, ctx->ifindex,
			  NULL);

	ret = ipv4_load(ctx, &ip4);
	if (IS_DROP(ret))
		return ret;

	ep = lookup_ip4_endpoint(ip4->daddr);
	if (ep && !(ep->flags & ENDPOINT_F_HOST)) {
		*dst_id = ep->lxc_id;
		return tail_call_policy(ctx, ep->lxc_id, *src_label);
	}

	/*
	 * The node itself or an address it routes: the inner destination MAC
	 * is the sending pod's gateway, not this device, so make the stack
	 * accept the packet as addressed to it.
	 */
	if (bpf_skb_change_type(ctx, PACKET_HOST) < 0)
		return DROP_WRITE_ERROR;
	send_trace_notify(ctx, MONITOR_AGGREGATION, TRACE_TO_STACK,
			  OVERLAY_SOURCE_ID, *src_label, 0, 0, 0, NULL);
	update_metrics(ctx->len, METRIC_INGRESS, REASON_FORWARDED);
	return TC_ACT_OK;
}

SEC("classifier/from-overlay")
int cil_from_overlay(struct __sk_buff *ctx)
{
	__u32 src_label = 0;
	__u32 dst_id = 0;
	int ret;

	/* Only IPv4 is encapsulated by the nodes; the rest is the stack's. */
	if (ctx->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;

	ret = handle_ipv4_from_overlay(ctx, &src_label, &dst_id);
	if (IS_DROP(ret))
		return send_drop_notify(ctx, OVERLAY_SOURCE_ID, src_label, 0,
					dst_id, ret, METRIC_INGRESS);
	return ret;
}

/* The node's own traffic for another node's pod: tunnel it to that node. */
static __always_inline int handle_ipv4_to_overlay(struct __sk_buff *ctx,
						  __u32 *dst_label)
{
	struct remote_endpoint_info *remote;
	__be32 tunnel_endpoint = 0;
	struct iphdr *ip4;
	int ret;

	ret = ipv4_load(ctx, &ip4);
	if (IS_DROP(ret))
		return ret;
	remote = ipcache_lookup4(ip4->daddr);
	if (remote) {
		*dst_label = remote->sec_identity;
		tunnel_endpoint = ipcache_tunnel_endpoint4(remote);
	}
	if (!tunnel_endpoint)
		return DROP_NO_TUNNEL_ENDPOINT;
	ret = encap_set_tunnel_key4(ctx, tunnel_endpoint, REMOTE_NODE_ID);
	if (IS_DROP(ret))
		return ret;
	send_trace_notify(ctx, MONITOR_AGGREGATION, TRACE_TO_OVERLAY,
			  OVERLAY_SOURCE_ID, HOST_ID, *dst_label, 0,
			  ctx->ifindex, NULL);
	update_metrics(ctx->len, METRIC_EGRESS, REASON_FORWARDED);
	return TC_ACT_OK;
}

SEC("classifier/to-overlay")
int cil_to_overlay(struct __sk_buff *ctx)
{
	struct bpf_tunnel_key key = {};
	__u32 dst_label = 0;
	int ret;

	if (ctx->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	/* Already addressed: a pod's packet, redirected here by bpf_lxc. */
	if (bpf_skb_get_tunnel_key(ctx, &key, sizeof(key), 0) == 0)
		return TC_ACT_OK;

	ret = handle_ipv4_to_overlay(ctx, &dst_label);
	if (IS_DROP(ret))
		return send_drop_notify(ctx, OVERLAY_SOURCE_ID, HOST_ID,
					dst_label, 0, ret, METRIC_EGRESS);
	return ret;
}

char __license[] SEC("license") = "Dual BSD/GPL";
