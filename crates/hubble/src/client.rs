//! Connecting an Observer client to a server given as Hubble's `--server` takes it: a unix
//! socket (`unix:///run/cilium/hubble.sock`, `unix:relative.sock` or a bare absolute path)
//! or `host:port` (with or without `http://`).

use std::path::PathBuf;

use cilium_hubble_proto::observer::observer_client::ObserverClient;
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// The server could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("{target:?} is not a server address (unix://PATH or HOST:PORT)")]
    Address {
        target: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("connecting to {target}")]
    Connect {
        target: String,
        #[source]
        source: tonic::transport::Error,
    },
}

/// Where a `--server` value points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Unix(PathBuf),
    Tcp(String),
}

impl Target {
    /// Reads `unix://PATH`, `unix:PATH`, `/PATH`, `http://HOST:PORT` or `HOST:PORT`.
    pub fn parse(target: &str) -> Target {
        if let Some(path) = target
            .strip_prefix("unix://")
            .or_else(|| target.strip_prefix("unix:"))
        {
            return Target::Unix(PathBuf::from(path));
        }
        if target.starts_with('/') {
            return Target::Unix(PathBuf::from(target));
        }
        if target.contains("://") {
            Target::Tcp(target.to_string())
        } else {
            Target::Tcp(format!("http://{target}"))
        }
    }
}

/// An Observer client connected to `target`.
pub async fn connect(target: &str) -> Result<ObserverClient<Channel>, ConnectError> {
    let channel = match Target::parse(target) {
        Target::Unix(path) => {
            // The URI is required by the API but unused: the connector dials the socket.
            let endpoint = Endpoint::from_static("http://hubble.sock");
            endpoint
                .connect_with_connector(tower::service_fn(move |_: Uri| {
                    let path = path.clone();
                    async move { UnixStream::connect(path).await.map(TokioIo::new) }
                }))
                .await
        }
        Target::Tcp(uri) => {
            let endpoint =
                Endpoint::from_shared(uri.clone()).map_err(|source| ConnectError::Address {
                    target: target.to_string(),
                    source,
                })?;
            endpoint.connect().await
        }
    }
    .map_err(|source| ConnectError::Connect {
        target: target.to_string(),
        source,
    })?;
    Ok(ObserverClient::new(channel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_read_like_hubble_server_flags() {
        assert_eq!(
            Target::parse("unix:///var/run/cilium/hubble.sock"),
            Target::Unix("/var/run/cilium/hubble.sock".into())
        );
        assert_eq!(
            Target::parse("unix:hubble.sock"),
            Target::Unix("hubble.sock".into())
        );
        assert_eq!(
            Target::parse("/run/h.sock"),
            Target::Unix("/run/h.sock".into())
        );
        assert_eq!(
            Target::parse("localhost:4245"),
            Target::Tcp("http://localhost:4245".into())
        );
        assert_eq!(
            Target::parse("http://10.0.0.1:4244"),
            Target::Tcp("http://10.0.0.1:4244".into())
        );
    }
}
