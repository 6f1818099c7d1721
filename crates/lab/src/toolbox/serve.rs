//! The toolbox server: answers on every listed port with the pod's name.
//!
//! TCP connections that start with an HTTP request get `HTTP/1.1 200 OK` with the name as the
//! body; any other client (one that sends other bytes, closes its side, or stays silent for a
//! moment) gets the bare name. UDP datagrams are answered with the name.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::thread;
use std::time::{Duration, Instant};

use crate::toolbox::http::{self, Sniff};
use crate::toolbox::spec::{Proto, ServePort};

/// How long a `tcp` port waits for a silent client before answering with the bare name.
const SNIFF_WAIT: Duration = Duration::from_millis(300);
/// How long an `http` port waits for the request.
const HTTP_WAIT: Duration = Duration::from_secs(5);
/// Longest request header read before giving up on HTTP.
const MAX_REQUEST: usize = 16 * 1024;
/// How long to drain what the client still sends after the answer.
const DRAIN_WAIT: Duration = Duration::from_secs(1);

/// Errors of the toolbox server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}/{proto}")]
    Bind {
        addr: SocketAddr,
        proto: Proto,
        #[source]
        source: io::Error,
    },
    #[error("cannot read the bound address of port {port}/{proto}")]
    LocalAddr {
        port: u16,
        proto: Proto,
        #[source]
        source: io::Error,
    },
    #[error("receiving on {addr}/udp failed")]
    Receive {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("cannot start the thread serving {addr}")]
    Thread {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("the thread serving {addr} panicked")]
    Panicked { addr: SocketAddr },
}

enum Socket {
    Tcp(TcpListener, Proto),
    Udp(UdpSocket),
}

/// A toolbox server with all of its sockets bound.
pub struct Server {
    name: String,
    sockets: Vec<(SocketAddr, Socket)>,
}

impl Server {
    /// Binds every port on `ip`; port 0 picks a free port (see [`Server::local_addrs`]).
    pub fn bind(ip: IpAddr, ports: &[ServePort], name: &str) -> Result<Self, ServeError> {
        let mut sockets = Vec::with_capacity(ports.len());
        for p in ports {
            let want = SocketAddr::new(ip, p.port);
            let bind_err = |source| ServeError::Bind {
                addr: want,
                proto: p.proto,
                source,
            };
            let addr_err = |source| ServeError::LocalAddr {
                port: p.port,
                proto: p.proto,
                source,
            };
            let (addr, socket) = match p.proto {
                Proto::Tcp | Proto::Http => {
                    let l = TcpListener::bind(want).map_err(bind_err)?;
                    (l.local_addr().map_err(addr_err)?, Socket::Tcp(l, p.proto))
                }
                Proto::Udp => {
                    let s = UdpSocket::bind(want).map_err(bind_err)?;
                    (s.local_addr().map_err(addr_err)?, Socket::Udp(s))
                }
            };
            sockets.push((addr, socket));
        }
        Ok(Server {
            name: name.to_string(),
            sockets,
        })
    }

    /// The bound addresses, in the order the ports were given.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.sockets.iter().map(|(a, _)| *a).collect()
    }

    /// Serves until a socket fails; normally runs until the process is killed.
    pub fn run(self) -> Result<(), ServeError> {
        let mut workers = Vec::new();
        for (addr, socket) in self.sockets {
            let name = self.name.clone();
            let worker = thread::Builder::new()
                .name(format!("serve-{addr}"))
                .spawn(move || match socket {
                    Socket::Tcp(listener, proto) => {
                        serve_tcp(&listener, &name, proto);
                        Ok(())
                    }
                    Socket::Udp(socket) => serve_udp(&socket, addr, &name),
                })
                .map_err(|source| ServeError::Thread { addr, source })?;
            workers.push((addr, worker));
        }
        for (addr, worker) in workers {
            worker.join().map_err(|_| ServeError::Panicked { addr })??;
        }
        Ok(())
    }
}

fn serve_tcp(listener: &TcpListener, name: &str, proto: Proto) {
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                let name = name.to_string();
                let spawned = thread::Builder::new().spawn(move || {
                    let peer = stream.peer_addr().ok();
                    if let Err(error) = answer_tcp(stream, &name, proto) {
                        tracing::debug!(?peer, %error, "connection ended with an error");
                    }
                });
                if let Err(error) = spawned {
                    tracing::warn!(%error, "cannot start a connection thread");
                }
            }
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                // Back off briefly so that running out of descriptors does not spin.
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Answers one TCP connection: HTTP if the client asks in HTTP, the bare name otherwise.
fn answer_tcp(mut stream: TcpStream, name: &str, proto: Proto) -> io::Result<()> {
    let wait = if proto == Proto::Http {
        HTTP_WAIT
    } else {
        SNIFF_WAIT
    };
    let deadline = Instant::now() + wait;
    let mut buf = Vec::with_capacity(1024);
    let verdict = loop {
        match http::sniff(&buf) {
            Sniff::NeedMore if buf.len() < MAX_REQUEST => {}
            Sniff::NeedMore => break Sniff::Other,
            done => break done,
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break Sniff::Other;
        }
        stream.set_read_timeout(Some(left))?;
        let mut chunk = [0u8; 2048];
        match stream.read(&mut chunk) {
            Ok(0) => break Sniff::Other,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if is_timeout(&e) => break Sniff::Other,
            Err(e) => return Err(e),
        }
    };
    let reply = match verdict {
        Sniff::Request { head } => http::response(name, head),
        Sniff::NeedMore | Sniff::Other => name.as_bytes().to_vec(),
    };
    stream.write_all(&reply)?;
    stream.shutdown(Shutdown::Write)?;
    drain(&mut stream)
}

/// Reads until the client closes, so closing our side sends FIN rather than RST (which could
/// discard the answer before the client reads it).
fn drain(stream: &mut TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(DRAIN_WAIT))?;
    let mut sink = [0u8; 2048];
    loop {
        match stream.read(&mut sink) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if is_timeout(&e) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

fn serve_udp(socket: &UdpSocket, addr: SocketAddr, name: &str) -> Result<(), ServeError> {
    let mut buf = vec![0u8; 65536];
    loop {
        match socket.recv_from(&mut buf) {
            Ok((_, peer)) => {
                if let Err(error) = socket.send_to(name.as_bytes(), peer) {
                    tracing::debug!(%peer, %error, "cannot answer a datagram");
                }
            }
            // An ICMP error for an earlier answer surfaces here; it is not fatal.
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
            Err(source) => return Err(ServeError::Receive { addr, source }),
        }
    }
}

pub(crate) fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
