//! `cilium service list` / `cilium service get ID`: the node's service frontends and their
//! backends as the agent planned them (`GET /v1/service`), in cilium-dbg's columns.

use cilium_api::models::Service;
use cilium_api::ClientError;

use crate::cli::OutputFormat;
use crate::output::{self, OutputError, Table};
use crate::target::AgentTarget;

/// Errors of `cilium service`.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("cannot read services from the agent")]
    Get {
        #[source]
        source: ClientError,
    },
    #[error("cannot print services")]
    Output {
        #[source]
        source: OutputError,
    },
}

pub fn list(target: &AgentTarget, format: OutputFormat) -> Result<(), ServiceError> {
    let services = target
        .client()
        .services()
        .map_err(|source| ServiceError::Get { source })?;
    let text = match format {
        OutputFormat::Json => output::json(&services),
        OutputFormat::Text => render(&services),
    };
    output::print(&text).map_err(|source| ServiceError::Output { source })
}

pub fn get(target: &AgentTarget, id: u16, format: OutputFormat) -> Result<(), ServiceError> {
    let service = target
        .client()
        .service(id)
        .map_err(|source| ServiceError::Get { source })?;
    let text = match format {
        OutputFormat::Json => output::json(&service),
        OutputFormat::Text => render(std::slice::from_ref(&service)),
    };
    output::print(&text).map_err(|source| ServiceError::Output { source })
}

/// Cilium's layout: `ID  Frontend  Service Type  Backend`, one backend per line
/// (`1 => 10.0.1.5:80/TCP (active)`), continuation lines with empty leading columns.
fn render(services: &[Service]) -> String {
    let mut table = Table::new();
    table.row(["ID", "Frontend", "Service Type", "Backend"]);
    for service in services {
        let spec = &service.spec;
        let fe = &spec.frontend_address;
        let mut frontend = format!("{}:{}/{}", fe.ip, fe.port, fe.protocol);
        if fe.scope == "internal" {
            frontend.push_str("/i");
        }
        let backends: Vec<String> = spec
            .backend_addresses
            .iter()
            .enumerate()
            .map(|(i, b)| {
                format!(
                    "{} => {}:{}/{} ({})",
                    i + 1,
                    b.ip,
                    b.port,
                    b.protocol,
                    b.state
                )
            })
            .collect();
        let id = spec.id.to_string();
        let first = backends.first().map(String::as_str).unwrap_or("");
        table.row([
            id.as_str(),
            frontend.as_str(),
            spec.flags.service_type.as_str(),
            first,
        ]);
        for backend in backends.iter().skip(1) {
            table.row(["", "", "", backend.as_str()]);
        }
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use cilium_api::models::{BackendAddress, FrontendAddress, ServiceSpec, ServiceSpecFlags};

    use super::*;

    fn backend(ip: &str, state: &str) -> BackendAddress {
        BackendAddress {
            ip: ip.into(),
            port: 8080,
            protocol: "TCP".into(),
            state: state.into(),
            id: 1,
        }
    }

    #[test]
    fn rows_read_like_cilium() {
        let services = [Service {
            spec: ServiceSpec {
                id: 1,
                frontend_address: FrontendAddress {
                    ip: "10.96.0.10".into(),
                    port: 80,
                    protocol: "TCP".into(),
                    scope: "external".into(),
                },
                backend_addresses: vec![
                    backend("10.0.1.5", "active"),
                    backend("10.0.2.7", "terminating"),
                ],
                flags: ServiceSpecFlags {
                    service_type: "ClusterIP".into(),
                    name: "web".into(),
                    namespace: "shop".into(),
                    algorithm: "random".into(),
                    affinity_timeout: None,
                },
            },
        }];
        assert_eq!(
            render(&services),
            "ID   Frontend            Service Type   Backend\n\
             1    10.96.0.10:80/TCP   ClusterIP      1 => 10.0.1.5:8080/TCP (active)\n\
             \x20                                       2 => 10.0.2.7:8080/TCP (terminating)\n"
        );
    }
}
