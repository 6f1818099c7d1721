//! Fans datapath events out to `cilium monitor` clients on the monitor socket.
//!
//! One task drains the `cilium_events` ring buffer into a broadcast channel; each connected
//! client gets its own task writing length-prefixed frames (`cilium-monitor`'s framing). A slow
//! client loses events (it lags the channel) instead of slowing the ring buffer down. Hubble,
//! when enabled, gets every record too, through its own bounded queue the drain never waits on.

use std::path::Path;
use std::sync::Arc;

use cilium_datapath::EventReader;
use cilium_hubble::EventSender;
use tokio::io::AsyncWriteExt;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::broadcast;

/// Most records taken from the ring buffer in one pass.
const DRAIN_BATCH: usize = 1024;

/// Events buffered per client before it starts losing them.
const CLIENT_BACKLOG: usize = 8192;

#[derive(Debug, thiserror::Error)]
#[error("binding the monitor socket {path}")]
pub struct MonitorBindError {
    path: String,
    #[source]
    source: std::io::Error,
}

/// Binds the monitor socket (replacing a stale one) and starts the reader and accept tasks;
/// `hubble` also receives every record.
pub fn start(
    socket: &Path,
    events: EventReader,
    hubble: Option<EventSender>,
) -> Result<(), MonitorBindError> {
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket).map_err(|source| MonitorBindError {
        path: socket.display().to_string(),
        source,
    })?;
    let (sender, _) = broadcast::channel::<Arc<[u8]>>(CLIENT_BACKLOG);
    tokio::spawn(drain_ring_buffer(events, sender.clone(), hubble));
    tokio::spawn(accept_clients(listener, sender));
    Ok(())
}

async fn drain_ring_buffer(
    mut events: EventReader,
    sender: broadcast::Sender<Arc<[u8]>>,
    hubble: Option<EventSender>,
) {
    loop {
        match events.next_batch(DRAIN_BATCH).await {
            Ok(records) => {
                // Monitor clients get every record; with none connected, nothing is copied.
                if sender.receiver_count() > 0 {
                    for record in &records {
                        let _ = sender.send(Arc::clone(record));
                    }
                }
                if let Some(hubble) = &hubble {
                    hubble.send_batch(records);
                }
            }
            Err(error) => {
                tracing::error!(error = %crate::api::chain(&error), "reading datapath events stopped");
                return;
            }
        }
    }
}

async fn accept_clients(listener: UnixListener, sender: broadcast::Sender<Arc<[u8]>>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve_client(stream, sender.subscribe()));
            }
            Err(error) => {
                tracing::warn!(%error, "accepting a monitor client failed");
            }
        }
    }
}

async fn serve_client(mut stream: UnixStream, mut events: broadcast::Receiver<Arc<[u8]>>) {
    tracing::debug!("monitor client connected");
    loop {
        let record = match events.recv().await {
            Ok(record) => record,
            Err(broadcast::error::RecvError::Lagged(lost)) => {
                tracing::debug!(lost, "monitor client too slow, events lost");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let Ok(frame) = cilium_monitor::encode_frame(&record) else {
            continue;
        };
        if stream.write_all(&frame).await.is_err() {
            tracing::debug!("monitor client disconnected");
            return;
        }
    }
}
