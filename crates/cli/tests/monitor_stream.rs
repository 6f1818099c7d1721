//! The real `cilium monitor` against a fake agent monitor socket that sends crafted datapath
//! records: text lines, `-t` filtering, `-o json`, undecodable records and a closed stream.

#[path = "support/run.rs"]
mod run;

use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::thread::JoinHandle;

use cilium_datapath::abi::{
    DropNotify, NotifyCaptureHdr, TraceNotify, CILIUM_NOTIFY_DROP, CILIUM_NOTIFY_TRACE,
    NOTIFY_DROP_VER, NOTIFY_TRACE_VER,
};
use run::{run_cilium, stderr, stdout};
use serde_json::Value;

/// A monitor socket in a temp dir that sends `records` as frames to the first client, then
/// closes the stream.
struct FakeMonitor {
    dir: tempfile::TempDir,
    thread: Option<JoinHandle<()>>,
}

impl FakeMonitor {
    fn start(records: Vec<Vec<u8>>) -> Self {
        let dir = tempfile::tempdir().expect("temp dir for the monitor socket");
        let listener = UnixListener::bind(dir.path().join("monitor1_2.sock"))
            .expect("bind fake monitor socket");
        let thread = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept the monitor client");
            for record in &records {
                cilium_monitor::write_frame(&mut stream, record).expect("write a frame");
            }
            stream.flush().expect("flush frames");
        });
        Self {
            dir,
            thread: Some(thread),
        }
    }

    fn api_socket(&self) -> String {
        self.dir.path().join("cilium.sock").display().to_string()
    }
}

impl Drop for FakeMonitor {
    fn drop(&mut self) {
        // If the CLI never connected, this connection releases the accept; otherwise it just
        // sits in the backlog.
        let _ = UnixStream::connect(self.dir.path().join("monitor1_2.sock"));
        if let Some(thread) = self.thread.take() {
            if let Err(panic) = thread.join() {
                if !std::thread::panicking() {
                    std::panic::resume_unwind(panic);
                }
            }
        }
    }
}

fn bytes_of<T: Copy>(value: &T) -> Vec<u8> {
    // SAFETY: T is one of the datapath's `#[repr(C)]` integer-only mirrors; only its bytes
    // are read.
    unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
}

/// Ethernet + IPv4 + TCP SYN from 10.0.1.5:34219 to 10.0.1.7:80.
fn syn_packet() -> Vec<u8> {
    let mut frame = vec![0x0a, 0, 0, 0, 0, 2, 0x0a, 0, 0, 0, 0, 1, 0x08, 0x00];
    frame.extend_from_slice(&[0x45, 0, 0, 40, 0, 1, 0x40, 0, 64, 6, 0, 0]);
    frame.extend_from_slice(&[10, 0, 1, 5, 10, 0, 1, 7]);
    frame.extend_from_slice(&34219u16.to_be_bytes());
    frame.extend_from_slice(&80u16.to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0]);
    frame
}

fn trace_record() -> Vec<u8> {
    let packet = syn_packet();
    let mut record = bytes_of(&TraceNotify {
        hdr: NotifyCaptureHdr {
            kind: CILIUM_NOTIFY_TRACE,
            subtype: 0,
            source: 212,
            hash: 0x3000_e251,
            len_orig: packet.len() as u32,
            len_cap: packet.len() as u16,
            version: NOTIFY_TRACE_VER,
        },
        src_label: 40321,
        dst_label: 40322,
        dst_id: 212,
        reason: 0,
        flags: 0,
        ifindex: 0,
        orig_ip: [10, 0, 1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    });
    record.extend_from_slice(&packet);
    record
}

fn drop_record() -> Vec<u8> {
    let packet = syn_packet();
    let mut record = bytes_of(&DropNotify {
        hdr: NotifyCaptureHdr {
            kind: CILIUM_NOTIFY_DROP,
            subtype: 133,
            source: 829,
            hash: 0,
            len_orig: packet.len() as u32,
            len_cap: packet.len() as u16,
            version: NOTIFY_DROP_VER,
        },
        src_label: 40321,
        dst_label: 0,
        dst_id: 0,
        line: 100,
        file: 2,
        ext_error: 0,
        ifindex: 0,
    });
    record.extend_from_slice(&packet);
    record
}

const TRACE_LINE: &str = "-> endpoint 212 flow 0x3000e251 , identity 40321->40322 state new \
                          ifindex 0 orig-ip 10.0.1.5: 10.0.1.5:34219 -> 10.0.1.7:80 tcp SYN";
const DROP_LINE: &str = "xx drop (Policy denied) flow 0x0 to endpoint 0, , identity \
                         40321->unknown: 10.0.1.5:34219 -> 10.0.1.7:80 tcp SYN";

#[test]
fn prints_one_line_per_event_and_reports_the_closed_stream() {
    let monitor = FakeMonitor::start(vec![trace_record(), vec![0xee; 10], drop_record()]);
    let out = run_cilium(&["-H", &monitor.api_socket(), "monitor"], &[]);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("Listening for events on ") && lines[1] == "Press Ctrl-C to quit",
        "{text}"
    );
    assert_eq!(&lines[2..], [TRACE_LINE, DROP_LINE], "{text}");
    let err = stderr(&out);
    assert!(
        err.contains("ignoring an event: undecodable datapath record of 10 bytes"),
        "{err}"
    );
    assert!(err.contains("the agent closed the monitor stream"), "{err}");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn type_filter_and_related_to() {
    let monitor = FakeMonitor::start(vec![trace_record(), drop_record()]);
    let out = run_cilium(&["-H", &monitor.api_socket(), "monitor", "-t", "drop"], &[]);
    let text = stdout(&out);
    assert_eq!(
        text.lines().skip(2).collect::<Vec<_>>(),
        [DROP_LINE],
        "{text}"
    );

    let monitor = FakeMonitor::start(vec![trace_record(), drop_record()]);
    let out = run_cilium(
        &[
            "-H",
            &monitor.api_socket(),
            "monitor",
            "--related-to",
            "212",
        ],
        &[],
    );
    let text = stdout(&out);
    assert_eq!(
        text.lines().skip(2).collect::<Vec<_>>(),
        [TRACE_LINE],
        "{text}"
    );
}

#[test]
fn json_output_is_one_object_per_line() {
    let monitor = FakeMonitor::start(vec![trace_record(), drop_record()]);
    let out = run_cilium(&["-H", &monitor.api_socket(), "monitor", "-o", "json"], &[]);
    let text = stdout(&out);
    let events: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}")))
        .collect();
    assert_eq!(events.len(), 2, "{text}");
    assert_eq!(events[0]["type"], "trace");
    assert_eq!(events[0]["observation_point"], "to-endpoint");
    assert_eq!(events[0]["source_endpoint"], 212);
    assert_eq!(events[0]["summary"]["ip"]["dst"], "10.0.1.7");
    assert_eq!(events[1]["type"], "drop");
    assert_eq!(events[1]["reason"], "Policy denied");
    assert_eq!(events[1]["src_identity"], 40321);
}

#[test]
fn verbose_adds_packet_layers() {
    let monitor = FakeMonitor::start(vec![drop_record()]);
    let out = run_cilium(&["-H", &monitor.api_socket(), "monitor", "-v"], &[]);
    let text = stdout(&out);
    assert!(text.contains(DROP_LINE), "{text}");
    assert!(text.contains("file bpf_lxc.c:100"), "{text}");
    assert!(
        text.contains("TCP\t{src_port=34219 dst_port=80 flags=SYN}"),
        "{text}"
    );
}

#[test]
fn missing_monitor_socket_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let api = dir.path().join("cilium.sock");
    let out = run_cilium(&["-H", api.to_str().unwrap(), "monitor"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("cannot connect to the agent's monitor socket at")
            && err.contains("monitor1_2.sock"),
        "{err}"
    );
    assert!(stdout(&out).is_empty(), "no banner before connecting");
}
