//! `netbench`: a TCP echo server and two clients for the benchmarks — request/response
//! ping-pong over one connection (`rr`) and connect/request/response/close loops (`crr`) —
//! reporting rates and latency percentiles as JSON. Every run is bounded in time and count.

pub mod client;
pub mod histogram;
pub mod server;
