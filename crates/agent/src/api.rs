//! The REST API on the agent's unix socket, with Cilium's paths under `/v1`.
//!
//! Handlers are thin: they move the work to a blocking thread (datapath programming does
//! syscalls) and map [`AgentError`] to the status codes Cilium's API documents.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use cilium_api::models::{
    ApiError, DaemonConfigurationSpec, EndpointChangeRequest, KvPair, Status, TraceSelector,
};
use cilium_endpoint::EndpointError;
use cilium_ipam::IpamError;

use crate::agent::{Agent, AgentError};

/// Builds the `/v1` router.
pub fn router(agent: Arc<Agent>) -> Router {
    Router::new()
        .route("/v1/healthz", get(healthz))
        .route("/v1/config", get(config).patch(patch_config))
        .route("/v1/endpoint", get(list_endpoints))
        .route(
            "/v1/endpoint/{id}",
            get(get_endpoint).put(put_endpoint).delete(delete_endpoint),
        )
        .route("/v1/identity", get(list_identities))
        .route("/v1/identity/{id}", get(get_identity))
        .route("/v1/ipam", get(ipam_status).post(allocate_ip))
        .route("/v1/ipam/{ip}", post(reject_specific).delete(release_ip))
        .route("/v1/cluster/nodes", get(cluster_nodes))
        .route(
            "/v1/policy",
            get(get_policy).put(put_policy).delete(delete_policy),
        )
        .route("/v1/policy/resolve", get(trace_policy).post(trace_policy))
        .route("/v1/kvstore", get(kvstore_get))
        .route("/v1/service", get(list_services))
        .route("/v1/service/{id}", get(get_service))
        .route(
            "/v1/resources",
            axum::routing::put(apply_resources).delete(delete_resources),
        )
        .with_state(agent)
}

async fn healthz(State(agent): State<Arc<Agent>>) -> Response {
    let mut status = agent.status();
    let store = agent.cluster.kvstore_status().await;
    status.kvstore = Some(Status {
        state: if store.is_healthy() { "Ok" } else { "Failure" }.into(),
        msg: store.to_string(),
    });
    Json(status).into_response()
}

/// `GET /v1/service` (`cilium service list`).
async fn list_services(State(agent): State<Arc<Agent>>) -> Response {
    Json(agent.services.list()).into_response()
}

/// `GET /v1/service/{id}` (`cilium service get`): the frontend with that ID (reverse-NAT
/// index); its external-scope entry when it has two.
async fn get_service(State(agent): State<Arc<Agent>>, Path(id): Path<u16>) -> Response {
    match agent.services.list().into_iter().find(|s| s.spec.id == id) {
        Some(service) => Json(service).into_response(),
        None => error_response(StatusCode::NOT_FOUND, format!("service {id} not found")),
    }
}

async fn get_policy(State(agent): State<Arc<Agent>>) -> Response {
    Json(agent.policy.rules_json()).into_response()
}

async fn put_policy(State(agent): State<Arc<Agent>>, body: axum::body::Bytes) -> Response {
    let text = String::from_utf8_lossy(&body).into_owned();
    blocking(
        move || {
            agent
                .import_policy(&text)
                .map(|revision| Json(serde_json::json!({ "revision": revision })))
        },
        StatusCode::OK,
    )
    .await
}

async fn delete_policy(State(agent): State<Arc<Agent>>) -> Response {
    blocking(
        move || {
            Ok(Json(
                serde_json::json!({ "revision": agent.delete_policies() }),
            ))
        },
        StatusCode::OK,
    )
    .await
}

/// `GET /v1/policy/resolve` (`cilium policy trace`); POST is accepted too, for clients that
/// cannot send a body with GET.
async fn trace_policy(State(agent): State<Arc<Agent>>, body: axum::body::Bytes) -> Response {
    let selector: TraceSelector = match serde_json::from_slice(&body) {
        Ok(selector) => selector,
        Err(error) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                format!("invalid trace selector: {error}"),
            )
        }
    };
    let peer_named_ports = agent.identities.metadata().peer_named_ports();
    match crate::policy_trace::trace(&agent.policy, &selector, &peer_named_ports) {
        Ok(result) => Json(result).into_response(),
        Err(error) => error_response(StatusCode::BAD_REQUEST, chain(&error)),
    }
}

/// `PUT /v1/resources` (`cilium apply -f`): stores the objects in the body in the kvstore.
async fn apply_resources(State(agent): State<Arc<Agent>>, body: axum::body::Bytes) -> Response {
    let text = String::from_utf8_lossy(&body).into_owned();
    let store = Arc::clone(agent.cluster.store());
    resource_answer(
        crate::resources::apply(store.as_ref(), agent.cluster.cluster_name(), &text).await,
    )
}

/// `DELETE /v1/resources` (`cilium delete -f`): removes the objects in the body.
async fn delete_resources(State(agent): State<Arc<Agent>>, body: axum::body::Bytes) -> Response {
    let text = String::from_utf8_lossy(&body).into_owned();
    let store = Arc::clone(agent.cluster.store());
    resource_answer(
        crate::resources::delete(store.as_ref(), agent.cluster.cluster_name(), &text).await,
    )
}

fn resource_answer(result: Result<Vec<String>, crate::resources::ResourceError>) -> Response {
    match result {
        Ok(keys) => Json(serde_json::json!({ "keys": keys })).into_response(),
        Err(error @ crate::resources::ResourceError::Store(_)) => {
            error_response(StatusCode::SERVICE_UNAVAILABLE, chain(&error))
        }
        Err(error) => error_response(StatusCode::BAD_REQUEST, chain(&error)),
    }
}

async fn cluster_nodes(State(agent): State<Arc<Agent>>) -> Response {
    Json(agent.cluster_nodes()).into_response()
}

/// `GET /v1/kvstore?key=K[&recursive=true]`: entries at (or under) a key, values as text.
async fn kvstore_get(
    State(agent): State<Arc<Agent>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let Some(key) = query.get("key").filter(|k| !k.is_empty()) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "missing query parameter key".into(),
        );
    };
    let recursive = query.get("recursive").is_some_and(|r| r == "true");
    let store = agent.cluster.store();
    let entries = if recursive {
        store.list(key).await.map(|(entries, _)| entries)
    } else {
        store
            .get(key)
            .await
            .map(|entry| entry.into_iter().collect())
    };
    match entries {
        Ok(entries) => Json(
            entries
                .into_iter()
                .map(|kv| KvPair {
                    key: kv.key,
                    value: String::from_utf8_lossy(&kv.value).into_owned(),
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(error) => error_response(StatusCode::SERVICE_UNAVAILABLE, chain(&error)),
    }
}

async fn config(State(agent): State<Arc<Agent>>) -> Response {
    Json(agent.daemon_config()).into_response()
}

/// `PATCH /v1/config` (`cilium config KEY=VALUE`): `policy-enforcement` is the one mutable
/// setting; anything else is refused and changes nothing.
async fn patch_config(State(agent): State<Arc<Agent>>, body: axum::body::Bytes) -> Response {
    let spec: DaemonConfigurationSpec = match serde_json::from_slice(&body) {
        Ok(spec) => spec,
        Err(error) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                format!("invalid configuration change: {error}"),
            )
        }
    };
    if let Some(option) = spec.options.keys().next() {
        return error_response(
            StatusCode::BAD_REQUEST,
            format!("option {option:?} cannot be changed at runtime"),
        );
    }
    let mode = match spec.policy_enforcement.as_deref().map(str::parse) {
        None => None,
        Some(Ok(mode)) => Some(mode),
        Some(Err(error)) => return error_response(StatusCode::BAD_REQUEST, chain(&error)),
    };
    let applied = tokio::task::spawn_blocking(move || {
        if let Some(mode) = mode {
            agent.set_policy_enforcement(mode);
        }
        agent.daemon_config()
    })
    .await;
    match applied {
        Ok(config) => Json(config).into_response(),
        Err(error) => error_response(StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
    }
}

async fn list_endpoints(State(agent): State<Arc<Agent>>) -> Response {
    Json(agent.list_endpoints()).into_response()
}

async fn get_endpoint(State(agent): State<Arc<Agent>>, Path(id): Path<String>) -> Response {
    blocking(move || agent.get_endpoint(&id).map(Json), StatusCode::OK).await
}

async fn put_endpoint(
    State(agent): State<Arc<Agent>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let request: EndpointChangeRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                format!("invalid EndpointChangeRequest: {e}"),
            )
        }
    };
    blocking(
        move || agent.put_endpoint(&id, &request).map(Json),
        StatusCode::CREATED,
    )
    .await
}

async fn delete_endpoint(State(agent): State<Arc<Agent>>, Path(id): Path<String>) -> Response {
    blocking(
        move || {
            agent
                .delete_endpoint(&id)
                .map(|()| Json(serde_json::Value::Null))
        },
        StatusCode::OK,
    )
    .await
}

async fn list_identities(State(agent): State<Arc<Agent>>) -> Response {
    Json(agent.list_identities()).into_response()
}

async fn get_identity(State(agent): State<Arc<Agent>>, Path(id): Path<String>) -> Response {
    let Ok(number) = id.parse::<u32>() else {
        return error_response(
            StatusCode::BAD_REQUEST,
            format!("invalid identity {id:?}: expected a number"),
        );
    };
    match agent.get_identity(number) {
        Some(identity) => Json(identity).into_response(),
        None => error_response(
            StatusCode::NOT_FOUND,
            format!("identity {number} not found"),
        ),
    }
}

async fn ipam_status(State(agent): State<Arc<Agent>>) -> Response {
    Json(agent.ipam_status()).into_response()
}

async fn allocate_ip(
    State(agent): State<Arc<Agent>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let family = query.get("family").cloned().unwrap_or_default();
    let owner = query.get("owner").cloned().unwrap_or_default();
    blocking(
        move || agent.allocate_ip(&family, &owner).map(Json),
        StatusCode::CREATED,
    )
    .await
}

async fn reject_specific() -> Response {
    error_response(
        StatusCode::NOT_IMPLEMENTED,
        "allocating a chosen address is not supported; use POST /v1/ipam".into(),
    )
}

async fn release_ip(State(agent): State<Arc<Agent>>, Path(ip): Path<String>) -> Response {
    blocking(
        move || {
            agent
                .release_ip(&ip)
                .map(|()| Json(serde_json::Value::Null))
        },
        StatusCode::OK,
    )
    .await
}

/// Runs `work` on a blocking thread and turns its result into a response.
async fn blocking<T: IntoResponse + Send + 'static>(
    work: impl FnOnce() -> Result<T, AgentError> + Send + 'static,
    success: StatusCode,
) -> Response {
    match tokio::task::spawn_blocking(work).await {
        Ok(Ok(body)) => (success, body).into_response(),
        Ok(Err(error)) => {
            let status = status_of(&error);
            if status.is_server_error() {
                tracing::warn!(error = %chain(&error), "API request failed");
            }
            error_response(status, chain(&error))
        }
        Err(join) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("request handler failed: {join}"),
        ),
    }
}

fn status_of(error: &AgentError) -> StatusCode {
    match error {
        AgentError::InvalidRequest(_)
        | AgentError::AddressNotOurs { .. }
        | AgentError::InvalidPolicy(_) => StatusCode::BAD_REQUEST,
        AgentError::UnsupportedFamily { .. } => StatusCode::NOT_IMPLEMENTED,
        AgentError::Endpoint(e) => match e {
            EndpointError::NotFound { .. } => StatusCode::NOT_FOUND,
            EndpointError::IdInUse { .. } | EndpointError::AddressInUse { .. } => {
                StatusCode::CONFLICT
            }
            EndpointError::IdsExhausted => StatusCode::TOO_MANY_REQUESTS,
            EndpointError::Datapath { .. } | EndpointError::Store { .. } => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        },
        AgentError::Ipam(e) => match e {
            IpamError::NotAllocated { .. } => StatusCode::NOT_FOUND,
            IpamError::InUse { .. } | IpamError::Reserved { .. } => StatusCode::CONFLICT,
            IpamError::OutOfRange { .. } | IpamError::EmptyOwner => StatusCode::BAD_REQUEST,
            IpamError::Exhausted { .. } => StatusCode::BAD_GATEWAY,
            IpamError::RangeTooSmall { .. }
            | IpamError::RangeChanged { .. }
            | IpamError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        },
    }
}

fn error_response(status: StatusCode, error: String) -> Response {
    (status, Json(ApiError { error })).into_response()
}

/// An error and all its sources, `: `-separated, for API answers and logs.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}
