//! Putting every node's responses back in time order.
//!
//! Without `follow`, the relay has every node's answer before it sends anything: one sort,
//! then `number` applies to the merged flows (the last N of the cluster; with `first`, N per
//! node, as Cilium's relay does). While following, a [`SortBuffer`] holds each response for
//! a short window, so responses from nodes that arrive a little late still come out in
//! order; a full buffer releases its oldest at once.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use cilium_hubble::api::{get_flows_response::ResponseTypes, GetFlowsResponse};

/// The sort key of a response: its time, then its arrival order.
fn time_key(response: &GetFlowsResponse) -> (i64, i32) {
    response.time.map_or((0, 0), |t| (t.seconds, t.nanos))
}

fn is_flow(response: &GetFlowsResponse) -> bool {
    matches!(response.response_types, Some(ResponseTypes::Flow(_)))
}

/// Every node's complete answer, merged: sorted by time, then the last `number` flows
/// (notices between them kept) unless `number` is 0 or `first` is set.
pub fn merge_all(
    mut responses: Vec<GetFlowsResponse>,
    number: u64,
    first: bool,
) -> Vec<GetFlowsResponse> {
    responses.sort_by_key(time_key);
    if number == 0 || first {
        return responses;
    }
    let mut flows = 0u64;
    let mut start = responses.len();
    for (at, response) in responses.iter().enumerate().rev() {
        if flows == number {
            break;
        }
        if is_flow(response) {
            flows += 1;
        }
        start = at;
    }
    responses.split_off(start)
}

/// A response held until its window has passed.
struct Held {
    key: (i64, i32),
    seq: u64,
    arrived: Instant,
    response: GetFlowsResponse,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.key, self.seq) == (other.key, other.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.key, self.seq).cmp(&(other.key, other.seq))
    }
}

/// Responses of a followed stream, released in time order once they have waited `window`
/// (or at once when more than `capacity` are held).
pub struct SortBuffer {
    heap: BinaryHeap<Reverse<Held>>,
    window: Duration,
    capacity: usize,
    seq: u64,
}

impl SortBuffer {
    pub fn new(window: Duration, capacity: usize) -> Self {
        Self {
            heap: BinaryHeap::new(),
            window,
            capacity: capacity.max(1),
            seq: 0,
        }
    }

    /// Holds a response that arrived at `now`.
    pub fn push(&mut self, response: GetFlowsResponse, now: Instant) {
        self.seq += 1;
        self.heap.push(Reverse(Held {
            key: time_key(&response),
            seq: self.seq,
            arrived: now,
            response,
        }));
    }

    /// Responses due at `now`, oldest first: the earliest while it has waited its window or
    /// the buffer is over capacity.
    pub fn release(&mut self, now: Instant) -> Vec<GetFlowsResponse> {
        let mut out = Vec::new();
        while let Some(Reverse(oldest)) = self.heap.peek() {
            let due = now.saturating_duration_since(oldest.arrived) >= self.window
                || self.heap.len() > self.capacity;
            if !due {
                break;
            }
            if let Some(Reverse(held)) = self.heap.pop() {
                out.push(held.response);
            }
        }
        out
    }

    /// Everything held, oldest first (the stream is ending).
    pub fn drain(&mut self) -> Vec<GetFlowsResponse> {
        let mut out = Vec::with_capacity(self.heap.len());
        while let Some(Reverse(held)) = self.heap.pop() {
            out.push(held.response);
        }
        out
    }

    /// When the next held response becomes due, if any is held.
    pub fn next_due(&self) -> Option<Instant> {
        self.heap
            .iter()
            .map(|Reverse(h)| h.arrived + self.window)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use cilium_hubble::flow::{Flow, LostEvent};
    use cilium_hubble::Timestamp;

    use super::*;

    fn flow(node: &str, seconds: i64) -> GetFlowsResponse {
        GetFlowsResponse {
            node_name: node.into(),
            time: Some(Timestamp { seconds, nanos: 0 }),
            response_types: Some(ResponseTypes::Flow(Flow::default())),
        }
    }

    fn lost(seconds: i64) -> GetFlowsResponse {
        GetFlowsResponse {
            node_name: "n1".into(),
            time: Some(Timestamp { seconds, nanos: 0 }),
            response_types: Some(ResponseTypes::LostEvents(LostEvent::default())),
        }
    }

    fn names(responses: &[GetFlowsResponse]) -> Vec<String> {
        responses
            .iter()
            .map(|r| match r.response_types {
                Some(ResponseTypes::Flow(_)) => format!("{}@{}", r.node_name, time_key(r).0),
                _ => format!("lost@{}", time_key(r).0),
            })
            .collect()
    }

    #[test]
    fn complete_answers_merge_by_time_and_keep_the_last_n() {
        let all = vec![
            flow("n1", 1),
            flow("n1", 4),
            flow("n2", 2),
            lost(3),
            flow("n2", 5),
        ];
        assert_eq!(
            names(&merge_all(all.clone(), 0, false)),
            ["n1@1", "n2@2", "lost@3", "n1@4", "n2@5"]
        );
        assert_eq!(names(&merge_all(all.clone(), 2, false)), ["n1@4", "n2@5"]);
        assert_eq!(
            names(&merge_all(all.clone(), 3, false)),
            ["n2@2", "lost@3", "n1@4", "n2@5"]
        );
        assert_eq!(
            merge_all(all, 1, true).len(),
            5,
            "first: N per node, all kept"
        );
    }

    #[test]
    fn followed_responses_wait_their_window_and_come_out_in_order() {
        let start = Instant::now();
        let window = Duration::from_millis(100);
        let mut buffer = SortBuffer::new(window, 10);
        buffer.push(flow("n2", 5), start);
        buffer.push(flow("n1", 4), start + Duration::from_millis(50));
        assert!(buffer.release(start + Duration::from_millis(60)).is_empty());
        assert_eq!(buffer.next_due(), Some(start + window));
        // n1@4 is older, so n2@5 waits behind it until n1@4 is due too.
        assert!(buffer.release(start + window).is_empty());
        assert_eq!(
            names(&buffer.release(start + Duration::from_millis(150))),
            ["n1@4", "n2@5"]
        );
        assert_eq!(buffer.next_due(), None);
    }

    #[test]
    fn a_full_buffer_releases_the_oldest_at_once() {
        let now = Instant::now();
        let mut buffer = SortBuffer::new(Duration::from_secs(60), 2);
        for t in [3, 1, 2] {
            buffer.push(flow("n1", t), now);
        }
        assert_eq!(names(&buffer.release(now)), ["n1@1"]);
        assert_eq!(names(&buffer.drain()), ["n1@2", "n1@3"]);
    }
}
