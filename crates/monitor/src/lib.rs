//! The `cilium monitor` event stream: the framing the agent uses on its monitor socket,
//! decoding of datapath records and their captured packets, filtering, and the text and JSON
//! forms users read. Pure code with no privilege needed.

pub mod event;
pub mod filter;
pub mod frame;
pub mod names;
pub mod packet;
pub mod rev_nat;
pub mod text;

pub use event::{
    DropEvent, EventError, EventKind, MonitorEvent, PolicyAction, PolicyVerdictEvent, TraceEvent,
    TraceSockEvent, TrafficDirection,
};
pub use filter::EventFilter;
#[cfg(feature = "tokio")]
pub use frame::write_frame_async;
pub use frame::{encode_frame, read_frame, write_frame, FrameError, MAX_FRAME_LEN};
pub use packet::{decode_ethernet, PacketSummary};
pub use rev_nat::trace_rev_nat;
pub use text::format_verbose;
