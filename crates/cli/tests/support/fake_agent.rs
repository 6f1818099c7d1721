//! A fake agent for tests: answers `GET <path>` with canned JSON on a unix socket in a temp
//! directory and records the requests it saw.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// A fake agent: answers `GET <path>` with canned (status, JSON) pairs, 404 otherwise.
pub struct FakeAgent {
    dir: tempfile::TempDir,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl FakeAgent {
    pub fn start(routes: &[(&str, u16, serde_json::Value)]) -> Self {
        let dir = tempfile::tempdir().expect("create temp dir for the fake agent");
        let socket = dir.path().join("cilium.sock");
        let listener = UnixListener::bind(&socket)
            .unwrap_or_else(|e| panic!("bind fake agent at {}: {e}", socket.display()));
        let routes: HashMap<String, (u16, String)> = routes
            .iter()
            .map(|(path, status, body)| (path.to_string(), (*status, body.to_string())))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, requests) = (stop.clone(), requests.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    answer(stream, &routes, &requests);
                }
            })
        };
        Self {
            dir,
            stop,
            thread: Some(thread),
            requests,
        }
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("cilium.sock")
    }

    /// Request lines (`GET /v1/healthz`) seen so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("requests lock").clone()
    }
}

impl Drop for FakeAgent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = UnixStream::connect(self.socket());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn answer(
    stream: UnixStream,
    routes: &HashMap<String, (u16, String)>,
    requests: &Mutex<Vec<String>>,
) {
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut content_length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            content_length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; content_length];
    let _ = reader.read_exact(&mut body);
    let mut parts = request_line.split_whitespace();
    let key = format!(
        "{} {}",
        parts.next().unwrap_or(""),
        parts.next().unwrap_or("")
    );
    requests.lock().expect("requests lock").push(key.clone());
    let path = key.split_once(' ').map(|(_, p)| p).unwrap_or("");
    let (status, body) = routes
        .get(path)
        .cloned()
        .unwrap_or((404, r#"{"error":"not found"}"#.to_string()));
    let response = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = (&stream).write_all(response.as_bytes());
}
