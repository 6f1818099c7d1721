//! Probes run from inside network namespaces without starting a process per probe: each
//! probe gets a thread of its own that enters the namespace (`setns` is per thread) and
//! talks to the toolbox server the way `cilium-lab connect` does. Sockets keep the namespace
//! they were created in, so a stream opened here can be used from any thread afterwards.
//!
//! Everything here panics with context when the test machinery itself fails (a namespace that
//! cannot be entered); a probe that gets no answer is an observation, not a failure.

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sched::{setns, CloneFlags};

/// Transport protocol of a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Proto {
    Tcp,
    Udp,
}

/// A destination port and its protocol, shown as `80/tcp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port {
    pub number: u16,
    pub proto: Proto,
}

impl Port {
    pub const fn tcp(number: u16) -> Port {
        Port {
            number,
            proto: Proto::Tcp,
        }
    }

    pub const fn udp(number: u16) -> Port {
        Port {
            number,
            proto: Proto::Udp,
        }
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.proto {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        };
        write!(f, "{}/{proto}", self.number)
    }
}

/// Starts `work` on a new thread that first enters network namespace `netns`
/// (`/run/netns/<netns>`).
pub fn spawn_in_netns<T, F>(netns: &str, work: F) -> JoinHandle<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let path = format!("/run/netns/{netns}");
    std::thread::Builder::new()
        .name(format!("in-{netns}"))
        .stack_size(256 * 1024)
        .spawn(move || {
            let file = File::open(&path).unwrap_or_else(|e| panic!("opening {path}: {e}"));
            setns(&file, CloneFlags::CLONE_NEWNET)
                .unwrap_or_else(|e| panic!("entering network namespace {path}: {e}"));
            work()
        })
        .unwrap_or_else(|e| panic!("starting a thread for {netns}: {e}"))
}

/// Runs `work` inside network namespace `netns` and returns its result.
pub fn in_netns<T, F>(netns: &str, work: F) -> T
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    spawn_in_netns(netns, work)
        .join()
        .unwrap_or_else(|_| panic!("the thread working in {netns} panicked"))
}

/// One toolbox probe from the calling thread's namespace: the server's answer (the serving
/// pod's name), or `None` when there was none within `timeout` (dropped, refused, reset).
pub fn probe(to: SocketAddrV4, proto: Proto, timeout: Duration) -> Option<String> {
    let answer = match proto {
        Proto::Tcp => probe_tcp(to, timeout),
        Proto::Udp => probe_udp(to, timeout),
    };
    answer.ok().filter(|a| !a.is_empty())
}

fn probe_tcp(to: SocketAddrV4, timeout: Duration) -> io::Result<String> {
    let deadline = Instant::now() + timeout;
    let stream = TcpStream::connect_timeout(&SocketAddr::V4(to), timeout)?;
    stream.set_read_timeout(Some(left(deadline)?))?;
    // Closing our side tells the toolbox server not to wait for an HTTP request.
    stream.shutdown(Shutdown::Write)?;
    let mut answer = String::new();
    stream.take(4096).read_to_string(&mut answer)?;
    Ok(answer)
}

fn probe_udp(to: SocketAddrV4, timeout: Duration) -> io::Result<String> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    socket.connect(to)?;
    socket.send(b"ping")?;
    socket.set_read_timeout(Some(timeout))?;
    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
}

fn left(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(io::ErrorKind::TimedOut.into())
    } else {
        Ok(left)
    }
}

/// A TCP echo server listening inside a namespace, for connections that must stay open
/// across policy changes. Stops accepting when dropped; open connections end when their
/// client closes them.
pub struct EchoServer {
    stop: Arc<AtomicBool>,
    accepted: Arc<AtomicUsize>,
    acceptor: Option<JoinHandle<()>>,
}

/// How long an echo connection may stay silent before the server gives up on it.
const ECHO_IDLE: Duration = Duration::from_secs(60);

impl EchoServer {
    /// Listens on `0.0.0.0:port` inside `netns`.
    pub fn start(netns: &str, port: u16) -> EchoServer {
        let listener = in_netns(netns, move || {
            TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))
        })
        .unwrap_or_else(|e| panic!("echo server: binding port {port} in {netns}: {e}"));
        listener
            .set_nonblocking(true)
            .expect("echo server: non-blocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        let acceptor = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        counter.fetch_add(1, Ordering::Relaxed);
                        std::thread::spawn(move || echo(stream));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(e) => panic!("echo server: accept failed: {e}"),
                }
            }
        });
        EchoServer {
            stop,
            accepted,
            acceptor: Some(acceptor),
        }
    }

    /// How many connections it has accepted so far.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn echo(mut stream: TcpStream) {
    if stream.set_nonblocking(false).is_err() || stream.set_read_timeout(Some(ECHO_IDLE)).is_err() {
        return;
    }
    let mut buf = [0u8; 1024];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 || stream.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

/// A client connection held open across policy changes.
pub struct EchoClient {
    stream: TcpStream,
}

impl EchoClient {
    /// Connects from inside `netns`; `None` when the connection cannot be established.
    pub fn connect(netns: &str, to: SocketAddrV4, timeout: Duration) -> Option<EchoClient> {
        in_netns(netns, move || {
            TcpStream::connect_timeout(&SocketAddr::V4(to), timeout).ok()
        })
        .map(|stream| EchoClient { stream })
    }

    /// Sends `message` and waits for it to come back; whether it did within `timeout`.
    pub fn round_trip(&mut self, message: &str, timeout: Duration) -> bool {
        exchange(&mut self.stream, message, timeout).unwrap_or(false)
    }
}

fn exchange(stream: &mut TcpStream, message: &str, timeout: Duration) -> io::Result<bool> {
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(message.as_bytes())?;
    let mut back = vec![0u8; message.len()];
    stream.read_exact(&mut back)?;
    Ok(back == message.as_bytes())
}
