//! The echo server: every byte a client sends is echoed back, so `rr` and `crr` clients share
//! one server. One thread multiplexes all connections (tokio, current-thread), which keeps the
//! per-connection cost of `crr` small and lets the server be pinned to one vCPU.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Largest read per call.
const BUF: usize = 64 * 1024;
/// A connection silent for this long is dropped, so stuck clients do not pile up.
const IDLE: Duration = Duration::from_secs(60);

/// Errors of the server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot start the event loop")]
    Runtime {
        #[source]
        source: io::Error,
    },
    #[error("cannot listen on {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the listening address")]
    LocalAddr {
        #[source]
        source: io::Error,
    },
}

/// A bound echo server with its own single-threaded event loop.
pub struct Server {
    runtime: tokio::runtime::Runtime,
    listener: TcpListener,
}

impl Server {
    pub fn bind(addr: SocketAddr) -> Result<Self, ServerError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| ServerError::Runtime { source })?;
        let listener = runtime
            .block_on(TcpListener::bind(addr))
            .map_err(|source| ServerError::Bind { addr, source })?;
        Ok(Server { runtime, listener })
    }

    pub fn local_addr(&self) -> Result<SocketAddr, ServerError> {
        self.listener
            .local_addr()
            .map_err(|source| ServerError::LocalAddr { source })
    }

    /// Serves until `limit` passes, or forever without one.
    pub fn run(self, limit: Option<Duration>) {
        let Server { runtime, listener } = self;
        runtime.block_on(async move {
            let accept = accept_loop(listener);
            match limit {
                Some(limit) => {
                    let _ = tokio::time::timeout(limit, accept).await;
                }
                None => accept.await,
            }
        });
    }
}

async fn accept_loop(listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(echo(stream));
            }
            Err(error) => {
                eprintln!("netbench server: accept failed: {error}");
                // Back off briefly so that running out of descriptors does not spin.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Echoes until the client closes or goes idle; errors just end the connection.
async fn echo(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; BUF];
    loop {
        match tokio::time::timeout(IDLE, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => {
                if stream.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            _ => return,
        }
    }
}
