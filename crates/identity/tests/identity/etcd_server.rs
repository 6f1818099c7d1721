//! A real etcd (`/usr/bin/etcd`, Debian's etcd-server) as a child process on 127.0.0.1 with
//! free ports and a temporary data directory; killed and removed on drop.

use std::fs::File;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cilium_kvstore::{EtcdConfig, EtcdStore, KvStore};
use tempfile::TempDir;

const ETCD: &str = "/usr/bin/etcd";

pub struct EtcdServer {
    dir: TempDir,
    client_port: u16,
    child: Child,
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0 to find a free port");
    listener.local_addr().expect("local address").port()
}

impl EtcdServer {
    /// Starts etcd and waits until it answers with a leader.
    pub async fn start() -> Self {
        assert!(
            std::path::Path::new(ETCD).exists(),
            "{ETCD} is missing: install Debian's etcd-server"
        );
        let dir = tempfile::Builder::new()
            .prefix("cilt-etcd-")
            .tempdir()
            .expect("create etcd data directory");
        let client_port = free_port();
        let peer = format!("http://127.0.0.1:{}", free_port());
        let client = format!("http://127.0.0.1:{client_port}");
        let log = File::create(dir.path().join("etcd.log")).expect("create etcd log");
        let child = Command::new(ETCD)
            .arg("--name=cilt")
            .arg(format!("--data-dir={}", dir.path().join("data").display()))
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
        let mut server = EtcdServer {
            dir,
            client_port,
            child,
        };
        server.wait_ready().await;
        server
    }

    /// A new client (its own connection) to this etcd.
    pub async fn client(&self) -> EtcdStore {
        let config = EtcdConfig {
            dial_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(2),
            ..EtcdConfig::new([format!("http://127.0.0.1:{}", self.client_port)])
        };
        EtcdStore::connect(config)
            .await
            .expect("set up etcd client")
    }

    async fn wait_ready(&mut self) {
        let store = self.client().await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if store.status().await.is_healthy() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("etcd exited with {status}; log:\n{}", self.log());
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
        std::fs::read_to_string(self.dir.path().join("etcd.log"))
            .unwrap_or_else(|e| format!("(no log: {e})"))
    }
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        // The child may already have exited; either way it is gone after wait().
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
