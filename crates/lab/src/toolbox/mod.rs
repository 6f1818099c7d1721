//! The agnhost-like toolbox that runs inside pods: a server that answers with the pod's name
//! and a one-shot client that tells an answer from a drop.

pub mod connect;
pub mod http;
pub mod serve;
pub mod spec;

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
    use std::thread;
    use std::time::Duration;

    use super::connect::{probe, ConnectError, Probe, ProbeMode};
    use super::serve::Server;
    use super::spec::{Proto, ServePort};

    const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    /// Starts a server named `web` on free loopback ports; returns tcp, udp, http addresses.
    fn start_server() -> (SocketAddr, SocketAddr, SocketAddr) {
        let ports = [Proto::Tcp, Proto::Udp, Proto::Http].map(|proto| ServePort { port: 0, proto });
        let server = Server::bind(LOCALHOST, &ports, "web").expect("bind loopback ports");
        let addrs = server.local_addrs();
        thread::spawn(move || server.run());
        (addrs[0], addrs[1], addrs[2])
    }

    fn run(addr: SocketAddr, mode: ProbeMode) -> Result<String, ConnectError> {
        probe(&Probe {
            addr,
            mode,
            timeout: Duration::from_secs(5),
        })
    }

    #[test]
    fn every_protocol_answers_with_the_pod_name() {
        let (tcp, udp, http) = start_server();
        assert_eq!(run(tcp, ProbeMode::Tcp).expect("tcp probe"), "web");
        assert_eq!(
            run(tcp, ProbeMode::Http).expect("http probe on a tcp port"),
            "web"
        );
        assert_eq!(run(udp, ProbeMode::Udp).expect("udp probe"), "web");
        assert_eq!(run(http, ProbeMode::Http).expect("http probe"), "web");
    }

    #[test]
    fn a_silent_tcp_client_still_gets_the_name() {
        let (tcp, _, _) = start_server();
        let mut stream = TcpStream::connect(tcp).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read answer");
        assert_eq!(answer, "web");
    }

    #[test]
    fn a_raw_http_client_gets_a_200_with_the_name() {
        let (_, _, http) = start_server();
        let mut stream = TcpStream::connect(http).expect("connect");
        stream
            .write_all(b"GET /hostname HTTP/1.0\r\n\r\n")
            .expect("send request");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read answer");
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\nweb"), "{answer}");
    }

    #[test]
    fn a_closed_port_is_reported_as_refused() {
        let port = TcpListener::bind((LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap();
        let err = run(port, ProbeMode::Tcp).expect_err("nothing listens there");
        assert!(matches!(err, ConnectError::Refused { .. }), "{err}");
    }

    #[test]
    fn a_silent_udp_peer_times_out() {
        let silent = std::net::UdpSocket::bind((LOCALHOST, 0)).unwrap();
        let err = probe(&Probe {
            addr: silent.local_addr().unwrap(),
            mode: ProbeMode::Udp,
            timeout: Duration::from_millis(300),
        })
        .expect_err("the peer never answers");
        assert!(matches!(err, ConnectError::Timeout { .. }), "{err}");
    }
}
