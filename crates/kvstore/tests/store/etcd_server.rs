//! A real etcd (`/usr/bin/etcd`, Debian's etcd-server) as a child process on 127.0.0.1 with
//! free ports and a temporary data directory; killed and removed on drop. The identity crate's
//! tests use it too.

use std::fs::File;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cilium_kvstore::{EtcdConfig, EtcdStore, KvStore};
use tempfile::TempDir;

const ETCD: &str = "/usr/bin/etcd";

pub struct EtcdServer {
    dir: TempDir,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to find a free port");
    listener.local_addr().expect("local address").port()
}

/// Fresh ports tried before giving up: between `free_port()` and etcd's bind, another test's
/// connection can take a port.
const START_ATTEMPTS: u32 = 5;

impl EtcdServer {
    /// Starts etcd on free ports and waits until it has a leader; picks other ports when one was
    /// taken in the meantime.
    pub async fn start() -> Self {
        for attempt in 1..=START_ATTEMPTS {
            let dir = tempfile::Builder::new()
                .prefix("cilt-etcd-")
                .tempdir()
                .expect("create etcd data directory");
            let mut server = EtcdServer {
                dir,
                client_port: free_port(),
                peer_port: free_port(),
                child: None,
            };
            server.spawn();
            match server.wait_ready().await {
                Ok(()) => return server,
                Err(log) if log.contains("address already in use") && attempt < START_ATTEMPTS => {
                    server.stop();
                }
                Err(log) => panic!("etcd exited; log:\n{log}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    /// `http://127.0.0.1:<client port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    pub fn client_port(&self) -> u16 {
        self.client_port
    }

    /// A client config with short timeouts, so outage tests run quickly.
    pub fn config(&self) -> EtcdConfig {
        EtcdConfig {
            dial_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(2),
            keep_alive_interval: Duration::from_secs(1),
            ..EtcdConfig::new([self.endpoint()])
        }
    }

    /// A new client (its own connection) to this etcd.
    pub async fn client(&self) -> EtcdStore {
        EtcdStore::connect(self.config())
            .await
            .expect("set up etcd client")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    /// Kills etcd (as a crash would); the data directory stays.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // The child may already have exited; either way it is gone after wait().
            let _ = child.kill();
            child.wait().expect("wait for etcd to exit");
        }
    }

    /// Starts etcd again on the same ports and data directory, and waits for a leader.
    pub async fn resume(&mut self) {
        self.spawn();
        if let Err(log) = self.wait_ready().await {
            panic!("etcd exited; log:\n{log}");
        }
    }

    /// Starts the etcd process on this server's ports and data directory.
    fn spawn(&mut self) {
        assert!(self.child.is_none(), "etcd is already running");
        assert!(
            std::path::Path::new(ETCD).exists(),
            "{ETCD} is missing: install Debian's etcd-server (scripts/setup.sh does)"
        );
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let client = self.endpoint();
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("open etcd log");
        let child = Command::new(ETCD)
            .arg("--name=cilt")
            .arg(format!(
                "--data-dir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={client}"))
            .arg(format!("--advertise-client-urls={client}"))
            .arg(format!("--listen-peer-urls={peer}"))
            .arg(format!("--initial-advertise-peer-urls={peer}"))
            .arg(format!("--initial-cluster=cilt={peer}"))
            .arg("--heartbeat-interval=10")
            .arg("--election-timeout=100")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone etcd log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn etcd");
        self.child = Some(child);
    }

    /// Waits until etcd has a leader; its log when it exits instead.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let store = self.client().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if store.status().await.is_healthy() {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!("exit {status}\n{}", self.log()));
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "etcd not ready within 20 s; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_else(|e| format!("(no log: {e})"))
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.stop();
    }
}
