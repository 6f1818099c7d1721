/* SPDX-License-Identifier: Apache-2.0 */
/*
 * local_delivery.h - hand a packet to a local endpoint: every program that
 * delivers to a pod (the sending pod's cil_from_container, the tunnel
 * device's cil_from_overlay) tail-calls the destination's handle_policy.
 */
#pragma once

#include "common.h"
#include "drop.h"
#include "maps.h"

/**
 * tail_call_policy - continue in the destination endpoint's policy program
 * @ctx: packet context
 * @ep_id: destination endpoint id (its cilium_call_policy slot)
 * @src_label: security identity of the source, handed over in cb[]
 *
 * Only returns when the slot is empty: DROP_MISSED_TAIL_CALL.
 */
static __always_inline int tail_call_policy(struct __sk_buff *ctx, __u16 ep_id,
					    __u32 src_label)
{
	ctx->cb[CB_SRC_LABEL] = src_label;
	bpf_tail_call(ctx, &cilium_call_policy, ep_id);
	return DROP_MISSED_TAIL_CALL;
}
