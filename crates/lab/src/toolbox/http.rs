//! The little HTTP the toolbox speaks: telling an HTTP request from other bytes, the one
//! answer the server gives, and reading that answer on the client side.

/// Request methods the server recognises at the start of a connection.
const METHODS: [&str; 9] = [
    "GET ", "HEAD ", "POST ", "PUT ", "DELETE ", "OPTIONS ", "PATCH ", "CONNECT ", "TRACE ",
];

/// What the bytes received so far look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniff {
    /// Could still become an HTTP request: keep reading.
    NeedMore,
    /// An HTTP request whose header is complete.
    Request { head: bool },
    /// Not HTTP.
    Other,
}

/// Classifies the first bytes a client sent.
pub fn sniff(buf: &[u8]) -> Sniff {
    let method = METHODS.iter().find(|m| buf.starts_with(m.as_bytes()));
    match method {
        Some(m) if buf.windows(4).any(|w| w == b"\r\n\r\n") => Sniff::Request {
            head: *m == "HEAD ",
        },
        Some(_) => Sniff::NeedMore,
        None if METHODS.iter().any(|m| m.as_bytes().starts_with(buf)) => Sniff::NeedMore,
        None => Sniff::Other,
    }
}

/// The server's answer to any request: 200 with the pod name as the body.
pub fn response(body: &str, head: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// The request `connect --http` sends.
pub fn request(host: &str) -> Vec<u8> {
    format!("GET / HTTP/1.1\r\nHost: {host}\r\nUser-Agent: cilium-lab\r\nConnection: close\r\n\r\n")
        .into_bytes()
}

/// Status code and body of a complete answer read to end of stream.
pub fn parse_response(raw: &[u8]) -> Option<(u16, String)> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let status_line = head.lines().next()?;
    if !status_line.starts_with("HTTP/") {
        return None;
    }
    let status = status_line.split_whitespace().nth(1)?.parse().ok()?;
    Some((
        status,
        String::from_utf8_lossy(&raw[split + 4..]).into_owned(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_requests_partial_requests_and_other_bytes() {
        assert_eq!(sniff(b""), Sniff::NeedMore);
        assert_eq!(sniff(b"GE"), Sniff::NeedMore);
        assert_eq!(sniff(b"GET / HTTP/1.1\r\nHost: x\r\n"), Sniff::NeedMore);
        assert_eq!(
            sniff(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Sniff::Request { head: false }
        );
        assert_eq!(
            sniff(b"HEAD / HTTP/1.0\r\n\r\n"),
            Sniff::Request { head: true }
        );
        assert_eq!(sniff(b"hello\n"), Sniff::Other);
        assert_eq!(sniff(b"GETX"), Sniff::Other);
    }

    #[test]
    fn response_round_trips() {
        let raw = response("server", false);
        assert_eq!(parse_response(&raw), Some((200, "server".to_string())));
        let head = response("server", true);
        assert_eq!(parse_response(&head), Some((200, String::new())));
        assert_eq!(parse_response(b"server"), None);
    }
}
