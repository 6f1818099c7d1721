//! Wire framing of the agent's monitor socket (`monitor1_2.sock`).
//!
//! Every datapath event travels as one frame: a `u32` little-endian length followed by that
//! many bytes of the raw ring-buffer record, exactly as the datapath wrote it. The reader
//! decodes the record itself, so the agent never re-encodes events.

use std::io::{self, Read, Write};

/// Largest record a frame may carry. Datapath records are a few hundred bytes (header plus at
/// most the captured packet prefix); anything larger means the stream is out of sync.
pub const MAX_FRAME_LEN: usize = 64 * 1024;

/// Errors reading or writing monitor frames.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("monitor frame of {len} bytes exceeds the {MAX_FRAME_LEN}-byte limit")]
    TooLarge { len: usize },
    #[error("monitor stream ended inside a frame ({got} of {expected} bytes read)")]
    Truncated { expected: usize, got: usize },
    #[error("I/O error while {op} a monitor frame: {source}")]
    Io {
        op: &'static str,
        #[source]
        source: io::Error,
    },
}

/// Encodes one record as a frame (length prefix plus payload) in a single buffer, so it can be
/// written with one call.
pub fn encode_frame(record: &[u8]) -> Result<Vec<u8>, FrameError> {
    if record.len() > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge { len: record.len() });
    }
    let mut frame = Vec::with_capacity(4 + record.len());
    frame.extend_from_slice(&(record.len() as u32).to_le_bytes());
    frame.extend_from_slice(record);
    Ok(frame)
}

/// Writes one record as a frame.
pub fn write_frame<W: Write>(writer: &mut W, record: &[u8]) -> Result<(), FrameError> {
    let frame = encode_frame(record)?;
    writer.write_all(&frame).map_err(|source| FrameError::Io {
        op: "writing",
        source,
    })
}

/// Writes one record as a frame to an async writer (the agent's side of the socket).
#[cfg(feature = "tokio")]
pub async fn write_frame_async<W>(writer: &mut W, record: &[u8]) -> Result<(), FrameError>
where
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncWriteExt;
    let frame = encode_frame(record)?;
    writer
        .write_all(&frame)
        .await
        .map_err(|source| FrameError::Io {
            op: "writing",
            source,
        })
}

/// Reads one frame and returns its record; `Ok(None)` when the stream ends cleanly between
/// frames.
pub fn read_frame<R: Read>(reader: &mut R) -> Result<Option<Vec<u8>>, FrameError> {
    let mut len_bytes = [0u8; 4];
    let got = read_full(reader, &mut len_bytes)?;
    if got == 0 {
        return Ok(None);
    }
    if got < len_bytes.len() {
        return Err(FrameError::Truncated {
            expected: len_bytes.len(),
            got,
        });
    }
    let len = u32::from_le_bytes(len_bytes) as usize;
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLarge { len });
    }
    let mut record = vec![0u8; len];
    let got = read_full(reader, &mut record)?;
    if got < len {
        return Err(FrameError::Truncated { expected: len, got });
    }
    Ok(Some(record))
}

/// Fills `buf` as far as the stream allows; returns how many bytes were read.
fn read_full<R: Read>(reader: &mut R, buf: &mut [u8]) -> Result<usize, FrameError> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(FrameError::Io {
                    op: "reading",
                    source,
                })
            }
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn frames_round_trip_in_order() {
        let mut wire = Vec::new();
        write_frame(&mut wire, b"first record").unwrap();
        write_frame(&mut wire, b"").unwrap();
        write_frame(&mut wire, &[0xAB; 300]).unwrap();
        assert_eq!(
            &wire[..4],
            &12u32.to_le_bytes(),
            "length prefix is little-endian"
        );

        let mut reader = Cursor::new(wire);
        assert_eq!(read_frame(&mut reader).unwrap().unwrap(), b"first record");
        assert_eq!(read_frame(&mut reader).unwrap().unwrap(), b"");
        assert_eq!(read_frame(&mut reader).unwrap().unwrap(), vec![0xAB; 300]);
        assert!(
            read_frame(&mut reader).unwrap().is_none(),
            "clean end of stream"
        );
    }

    #[test]
    fn absurd_lengths_are_rejected_on_both_sides() {
        let err = write_frame(&mut Vec::new(), &vec![0; MAX_FRAME_LEN + 1]).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { .. }), "{err}");

        let mut wire = ((MAX_FRAME_LEN + 1) as u32).to_le_bytes().to_vec();
        wire.extend_from_slice(&[0; 16]);
        let err = read_frame(&mut Cursor::new(wire)).unwrap_err();
        assert!(err.to_string().contains("exceeds"), "{err}");
    }

    #[test]
    fn truncated_streams_are_errors() {
        let err = read_frame(&mut Cursor::new(vec![5, 0])).unwrap_err();
        assert!(
            matches!(
                err,
                FrameError::Truncated {
                    expected: 4,
                    got: 2
                }
            ),
            "{err}"
        );

        let mut wire = Vec::new();
        write_frame(&mut wire, b"0123456789").unwrap();
        wire.truncate(9);
        let err = read_frame(&mut Cursor::new(wire)).unwrap_err();
        assert!(
            matches!(
                err,
                FrameError::Truncated {
                    expected: 10,
                    got: 5
                }
            ),
            "{err}"
        );
    }

    #[cfg(feature = "tokio")]
    #[tokio::test]
    async fn async_writer_produces_the_same_bytes() {
        let mut sync_wire = Vec::new();
        write_frame(&mut sync_wire, b"event").unwrap();
        let mut async_wire = Vec::new();
        write_frame_async(&mut async_wire, b"event").await.unwrap();
        assert_eq!(sync_wire, async_wire);
    }
}
