//! Probes for load-balanced services: many toolbox connections from inside a namespace at once,
//! tallied by the backend that answered, and connections from fixed client ports (the same
//! flows again and again, for Maglev's stability).
//!
//! TCP probes here send a byte (so the toolbox answers at once instead of waiting for an HTTP
//! request), read the answer and close with a reset (`SO_LINGER` 0): no `TIME_WAIT` is left
//! on either side, so a fixed client port can be used again right away, and the service's
//! conntrack entry sees the close and lets the next connection choose its backend afresh.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddrV4, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::socket::{
    bind, connect, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
};

use crate::probe::{probe, spawn_in_netns, Proto};

/// Answers of a batch of probes by answering backend, and the probes that got none.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub answers: BTreeMap<String, usize>,
    pub failures: usize,
}

impl Tally {
    fn add(&mut self, answer: Option<String>) {
        match answer {
            Some(name) => *self.answers.entry(name).or_default() += 1,
            None => self.failures += 1,
        }
    }

    fn merge(&mut self, other: Tally) {
        for (name, n) in other.answers {
            *self.answers.entry(name).or_default() += n;
        }
        self.failures += other.failures;
    }

    /// Probes that got an answer.
    pub fn answered(&self) -> usize {
        self.answers.values().sum()
    }
}

/// One TCP toolbox probe from the calling thread's namespace, from client port `local_port`
/// (0: any): the answering pod's name, or the error that stopped it.
pub fn tcp_answer(local_port: u16, to: SocketAddrV4, timeout: Duration) -> io::Result<String> {
    let fd: OwnedFd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    // connect(2) gives up after the send timeout.
    setsockopt(&fd, sockopt::SendTimeout, &timeval(timeout))?;
    if local_port != 0 {
        bind(fd.as_raw_fd(), &SockaddrIn::new(0, 0, 0, 0, local_port))?;
    }
    connect(fd.as_raw_fd(), &SockaddrIn::from(to))?;
    let mut stream = TcpStream::from(fd);
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(b"x")?;
    let mut answer = String::new();
    (&mut stream).take(4096).read_to_string(&mut answer)?;
    setsockopt(
        &stream,
        sockopt::Linger,
        &nix::libc::linger {
            l_onoff: 1,
            l_linger: 0,
        },
    )?;
    Ok(answer)
}

fn timeval(d: Duration) -> nix::sys::time::TimeVal {
    nix::sys::time::TimeVal::new(d.as_secs() as _, d.subsec_micros() as _)
}

fn one(to: SocketAddrV4, proto: Proto, timeout: Duration) -> Option<String> {
    match proto {
        Proto::Tcp => tcp_answer(0, to, timeout).ok().filter(|a| !a.is_empty()),
        Proto::Udp => probe(to, proto, timeout),
    }
}

/// `count` probes to `to` from inside `netns`, `parallel` at a time, tallied by answer.
pub fn spread(
    netns: &str,
    to: SocketAddrV4,
    proto: Proto,
    count: usize,
    parallel: usize,
    timeout: Duration,
) -> Tally {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..parallel.max(1))
        .map(|_| {
            let next = Arc::clone(&next);
            spawn_in_netns(netns, move || {
                let mut tally = Tally::default();
                while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < count {
                    tally.add(one(to, proto, timeout));
                }
                tally
            })
        })
        .collect();
    let mut total = Tally::default();
    for worker in workers {
        total.merge(
            worker
                .join()
                .unwrap_or_else(|_| panic!("a probe thread in {netns} panicked")),
        );
    }
    total
}

/// One TCP probe to `to` from each client port in `ports`, from inside `netns`: the answer
/// per port (`None`: no answer). Each port's flow is the same five-tuple every time.
pub fn from_ports(
    netns: &str,
    to: SocketAddrV4,
    ports: Vec<u16>,
    timeout: Duration,
) -> BTreeMap<u16, Option<String>> {
    spawn_in_netns(netns, move || {
        ports
            .into_iter()
            .map(|port| {
                let answer = tcp_answer(port, to, timeout).ok().filter(|a| !a.is_empty());
                (port, answer)
            })
            .collect()
    })
    .join()
    .unwrap_or_else(|_| panic!("the fixed-port prober in {netns} panicked"))
}

/// How long a TCP connect to `to` from inside `netns` takes to fail or succeed, and whether
/// it was refused (`ECONNREFUSED`, what an ICMP port-unreachable or a reset gives).
pub fn connect_outcome(
    netns: &str,
    to: SocketAddrV4,
    timeout: Duration,
) -> (Duration, io::Result<()>) {
    spawn_in_netns(netns, move || {
        let start = Instant::now();
        let result = TcpStream::connect_timeout(&to.into(), timeout).map(drop);
        (start.elapsed(), result)
    })
    .join()
    .unwrap_or_else(|_| panic!("the connect probe in {netns} panicked"))
}
