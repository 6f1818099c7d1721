//! Serving the Observer API on a unix socket (next to the agent's API) and on TCP
//! (`--hubble-listen-address`, Cilium's port 4244; plaintext: TLS is not implemented).

use std::future::Future;
use std::path::{Path, PathBuf};

use tokio::net::{TcpListener, UnixListener};
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::transport::Server;

use cilium_hubble_proto::observer::observer_server::{Observer, ObserverServer};

/// The socket or server could not be set up, or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("creating the socket directory {path}")]
    SocketDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("binding the Hubble socket {path}")]
    BindUnix {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("serving the Observer API on {address}")]
    Serve {
        address: String,
        #[source]
        source: tonic::transport::Error,
    },
}

/// Binds a unix socket at `path`, replacing a stale one and creating its directory.
pub fn bind_unix(path: &Path) -> Result<UnixListener, ServeError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| ServeError::SocketDir {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    // A socket left by a previous run refuses the bind; nothing else lives at our path.
    let _ = std::fs::remove_file(path);
    UnixListener::bind(path).map_err(|source| ServeError::BindUnix {
        path: path.to_path_buf(),
        source,
    })
}

/// Serves `service` (a node's [`ObserverService`](crate::ObserverService), or a relay's) on
/// a bound unix socket until `shutdown` completes.
pub async fn serve_unix<S: Observer>(
    listener: UnixListener,
    service: S,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let address = listener
        .local_addr()
        .ok()
        .and_then(|a| a.as_pathname().map(|p| format!("unix://{}", p.display())))
        .unwrap_or_else(|| "unix socket".into());
    Server::builder()
        .add_service(ObserverServer::new(service))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await
        .map_err(|source| ServeError::Serve { address, source })
}

/// Serves `service` on a bound TCP listener until `shutdown` completes.
pub async fn serve_tcp<S: Observer>(
    listener: TcpListener,
    service: S,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    let address = listener
        .local_addr()
        .map_or_else(|_| "TCP".into(), |a| a.to_string());
    Server::builder()
        .add_service(ObserverServer::new(service))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
        .await
        .map_err(|source| ServeError::Serve { address, source })
}
