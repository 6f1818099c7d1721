//! One `GetFlows` request: which buffered events it selects (`number`, `first`, `since`,
//! `until`, whitelist/blacklist) and which new ones it admits while following.
//!
//! As in Cilium: without `number`, `since` or `until` a plain request returns everything
//! buffered and a follow request only what comes next; `number` counts flows (not lost-event
//! notices), the last ones unless `first`. Lost-event notices are always delivered: a client
//! filtering for drops still wants to know it may have missed some.

use std::sync::Arc;

use cilium_hubble_proto::observer::{
    get_flows_response::ResponseTypes, GetFlowsRequest, GetFlowsResponse,
};
use cilium_hubble_proto::Timestamp;

use crate::filter::{FilterError, FlowFilterSet};
use crate::ring::{Event, Payload};

/// A request that cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("invalid flow filter")]
    Filter {
        #[source]
        source: FilterError,
    },
    #[error("`first` cannot be combined with `follow`")]
    FirstWithFollow,
    #[error("`since` ({since}) is after `until` ({until})")]
    EmptyWindow { since: Timestamp, until: Timestamp },
}

/// Whether a new event is for the follower.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Send,
    Skip,
    /// Past `until`: the stream is over.
    End,
}

/// A compiled `GetFlowsRequest`.
#[derive(Debug)]
pub struct FlowQuery {
    filters: FlowFilterSet,
    number: u64,
    first: bool,
    follow: bool,
    since: Option<Timestamp>,
    until: Option<Timestamp>,
}

impl FlowQuery {
    pub fn new(request: &GetFlowsRequest) -> Result<Self, QueryError> {
        if request.first && request.follow {
            return Err(QueryError::FirstWithFollow);
        }
        if let (Some(since), Some(until)) = (request.since, request.until) {
            if since > until {
                return Err(QueryError::EmptyWindow { since, until });
            }
        }
        let filters = FlowFilterSet::new(&request.whitelist, &request.blacklist)
            .map_err(|source| QueryError::Filter { source })?;
        Ok(Self {
            filters,
            number: request.number,
            first: request.first,
            follow: request.follow,
            since: request.since,
            until: request.until,
        })
    }

    pub fn follow(&self) -> bool {
        self.follow
    }

    fn in_window(&self, time: Timestamp) -> bool {
        self.since.is_none_or(|since| time >= since) && self.until.is_none_or(|until| time <= until)
    }

    /// Whether a buffered or new event passes the filters and the time window.
    fn selects(&self, event: &Event) -> bool {
        self.in_window(event.time)
            && match &event.payload {
                Payload::Flow(_) => event.flow().is_some_and(|flow| self.filters.allows(flow)),
                Payload::Lost(_) => true,
            }
    }

    /// The buffered events (oldest first) this request returns before following.
    pub fn select_buffered(&self, events: &[Arc<Event>]) -> Vec<Arc<Event>> {
        if self.follow && self.number == 0 && self.since.is_none() {
            return Vec::new();
        }
        let selected = events.iter().filter(|e| self.selects(e));
        if self.number == 0 {
            return selected.cloned().collect();
        }
        let mut flows = 0;
        let mut take = |event: &&Arc<Event>| {
            if flows >= self.number {
                return false;
            }
            if event.is_flow() {
                flows += 1;
            }
            true
        };
        if self.first {
            selected.take_while(|e| take(e)).cloned().collect()
        } else {
            let mut last: Vec<Arc<Event>> =
                selected.rev().take_while(|e| take(e)).cloned().collect();
            last.reverse();
            last
        }
    }

    /// Whether a newly written event goes to the follower.
    pub fn admit(&self, event: &Event) -> Admission {
        if self.until.is_some_and(|until| event.time > until) {
            Admission::End
        } else if self.selects(event) {
            Admission::Send
        } else {
            Admission::Skip
        }
    }
}

/// The response carrying one event, stamped with `node_name` for non-flow events; `None`
/// for a record that does not decode.
pub fn response(event: &Event, node_name: &str) -> Option<GetFlowsResponse> {
    match &event.payload {
        Payload::Flow(_) => event.flow().map(|flow| GetFlowsResponse {
            node_name: flow.node_name.clone(),
            time: flow.time.or(Some(event.time)),
            response_types: Some(ResponseTypes::Flow(flow.clone())),
        }),
        Payload::Lost(lost) => Some(GetFlowsResponse {
            node_name: node_name.to_string(),
            time: Some(event.time),
            response_types: Some(ResponseTypes::LostEvents(*lost)),
        }),
    }
}

#[cfg(test)]
mod tests {
    use cilium_hubble_proto::flow::{Flow, FlowFilter, LostEvent, Verdict};

    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp { seconds, nanos: 0 }
    }

    /// Flows at t=1..=6, odd ones dropped, and a lost-event notice at t=4.
    fn buffered() -> Vec<Arc<Event>> {
        let mut events: Vec<Arc<Event>> = (1..=6)
            .map(|t| {
                Arc::new(Event::flow_event(Flow {
                    uuid: format!("f{t}"),
                    verdict: if t % 2 == 1 {
                        Verdict::Dropped
                    } else {
                        Verdict::Forwarded
                    } as i32,
                    time: Some(at(t)),
                    ..Default::default()
                }))
            })
            .collect();
        events.insert(
            3,
            Arc::new(Event {
                time: at(4),
                payload: Payload::Lost(LostEvent {
                    num_events_lost: 9,
                    ..Default::default()
                }),
            }),
        );
        events
    }

    fn ids(query: &FlowQuery) -> Vec<String> {
        query
            .select_buffered(&buffered())
            .iter()
            .map(|e| e.flow().map_or("lost".into(), |f| f.uuid.clone()))
            .collect()
    }

    fn query(request: GetFlowsRequest) -> FlowQuery {
        FlowQuery::new(&request).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn number_first_and_last() {
        assert_eq!(
            ids(&query(GetFlowsRequest::default())),
            ["f1", "f2", "f3", "lost", "f4", "f5", "f6"]
        );
        let last2 = query(GetFlowsRequest {
            number: 2,
            ..Default::default()
        });
        assert_eq!(ids(&last2), ["f5", "f6"]);
        let last3 = query(GetFlowsRequest {
            number: 3,
            ..Default::default()
        });
        assert_eq!(ids(&last3), ["f4", "f5", "f6"]);
        let first2 = query(GetFlowsRequest {
            number: 2,
            first: true,
            ..Default::default()
        });
        assert_eq!(ids(&first2), ["f1", "f2"]);
    }

    #[test]
    fn filters_apply_before_counting() {
        let dropped = vec![FlowFilter {
            verdict: vec![Verdict::Dropped as i32],
            ..Default::default()
        }];
        let last_two_drops = query(GetFlowsRequest {
            number: 2,
            whitelist: dropped,
            ..Default::default()
        });
        assert_eq!(
            ids(&last_two_drops),
            ["f3", "lost", "f5"],
            "notices between the flows selected come along without counting"
        );
    }

    #[test]
    fn time_window_and_follow_start() {
        let window = query(GetFlowsRequest {
            since: Some(at(2)),
            until: Some(at(4)),
            ..Default::default()
        });
        assert_eq!(ids(&window), ["f2", "f3", "lost", "f4"]);
        assert_eq!(
            window.admit(&Event::flow_event(Flow {
                time: Some(at(5)),
                ..Default::default()
            })),
            Admission::End
        );

        let follow = query(GetFlowsRequest {
            follow: true,
            ..Default::default()
        });
        assert!(ids(&follow).is_empty(), "follow alone starts at the end");
        let follow_last = query(GetFlowsRequest {
            follow: true,
            number: 1,
            ..Default::default()
        });
        assert_eq!(ids(&follow_last), ["f6"]);
        let follow_since = query(GetFlowsRequest {
            follow: true,
            since: Some(at(6)),
            ..Default::default()
        });
        assert_eq!(ids(&follow_since), ["f6"]);
        assert_eq!(
            follow_since.admit(&Event::flow_event(Flow {
                time: Some(at(7)),
                ..Default::default()
            })),
            Admission::Send
        );
    }

    #[test]
    fn contradictory_requests_are_refused() {
        let err = FlowQuery::new(&GetFlowsRequest {
            first: true,
            follow: true,
            ..Default::default()
        })
        .expect_err("first+follow");
        assert!(matches!(err, QueryError::FirstWithFollow));
        let err = FlowQuery::new(&GetFlowsRequest {
            since: Some(at(5)),
            until: Some(at(1)),
            ..Default::default()
        })
        .expect_err("empty window");
        assert!(err.to_string().contains("after"), "{err}");
        let err = FlowQuery::new(&GetFlowsRequest {
            whitelist: vec![FlowFilter {
                source_ip: vec!["nope".into()],
                ..Default::default()
            }],
            ..Default::default()
        })
        .expect_err("bad filter");
        assert!(matches!(err, QueryError::Filter { .. }));
    }

    #[test]
    fn responses_carry_node_and_time() {
        let events = buffered();
        let flow = response(&events[0], "default/n1").expect("a flow");
        assert_eq!(flow.time, Some(at(1)));
        assert!(matches!(flow.response_types, Some(ResponseTypes::Flow(_))));
        let lost = response(&events[3], "default/n1").expect("a notice");
        assert_eq!(lost.node_name, "default/n1");
        assert!(matches!(
            lost.response_types,
            Some(ResponseTypes::LostEvents(LostEvent {
                num_events_lost: 9,
                ..
            }))
        ));
    }
}
