//! Per-endpoint status probes for `cilium status`.

use std::time::Duration;

use etcd_client::Client;
use futures::future::join_all;

use super::call;
use crate::error::Operation;
use crate::status::{Backend, EndpointState, EndpointStatus, StoreStatus};

/// Asks every endpoint for its status, all at once, each within `timeout`.
pub(super) async fn status(probes: &[(String, Client)], timeout: Duration) -> StoreStatus {
    let answers = join_all(probes.iter().map(|(address, client)| async move {
        let mut client = client.clone();
        let answer = call(timeout, Operation::Status, "status", client.status()).await;
        (address.clone(), answer)
    }))
    .await;

    let mut revision = None;
    let endpoints = answers
        .into_iter()
        .map(|(address, answer)| {
            let state = match answer {
                Ok(answer) => {
                    let member = answer.header().map_or(0, |h| h.member_id());
                    let rev = answer.header().map_or(0, |h| h.revision());
                    revision = revision.max(Some(rev));
                    EndpointState::Connected {
                        version: answer.version().to_owned(),
                        is_leader: answer.leader() != 0 && answer.leader() == member,
                        has_leader: answer.leader() != 0,
                    }
                }
                Err(error) => EndpointState::Unreachable {
                    error: error_chain(&error),
                },
            };
            EndpointStatus { address, state }
        })
        .collect();
    StoreStatus {
        backend: Backend::Etcd,
        endpoints,
        revision,
    }
}

/// `error` and its sources, joined with ": ", for a one-line status.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
