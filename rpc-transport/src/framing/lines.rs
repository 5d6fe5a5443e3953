//! One message a line: JSON Lines (NDJSON).

use bytes::{BufMut, Bytes, BytesMut};
use rpc_core::TransportError;
use tokio_util::codec::{Decoder, Encoder};

use super::utf8;

/// Newline-delimited messages (JSON Lines, also called NDJSON).
///
/// Decoding: a message is everything up to a `\n`, without it and without a `\r` right before it (so both
/// `\n` and `\r\n` end a line). Lines that are empty once their end is dropped are skipped. A line longer
/// than the limit (its `\n` and `\r` not counted) fails with
/// [`TooLarge`](TransportError::TooLarge) as soon as that many bytes are buffered without an end; one that
/// is not UTF-8 with [`InvalidUtf8`](TransportError::InvalidUtf8); bytes left without a `\n` when the stream
/// ends with [`Protocol`](TransportError::Protocol).
///
/// Encoding: the message, then `\n`. A JSON text only holds a raw line break as whitespace between tokens
/// (inside strings they are escaped), so any `\r` or `\n` in a message is written as a space: the line stays
/// one line and means the same JSON.
#[derive(Debug, Clone)]
pub struct LineCodec {
    max_message_size: usize,
    /// How far the buffer was searched for a `\n` without finding one.
    searched: usize,
}

impl LineCodec {
    /// A codec accepting lines of at most `max_message_size` bytes.
    pub fn new(max_message_size: usize) -> Self {
        Self {
            max_message_size,
            searched: 0,
        }
    }

    fn too_large(&self, size: usize) -> TransportError {
        TransportError::TooLarge {
            size,
            limit: self.max_message_size,
        }
    }
}

impl Decoder for LineCodec {
    type Item = Bytes;
    type Error = TransportError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, TransportError> {
        loop {
            let Some(offset) = src[self.searched..].iter().position(|&b| b == b'\n') else {
                self.searched = src.len();
                // Without its end yet, a line may still lose a `\r`: one byte more than the limit is allowed
                // only when it is that `\r`.
                let size = src.len();
                if size > self.max_message_size && !(size == self.max_message_size + 1 && src.ends_with(b"\r")) {
                    return Err(self.too_large(size));
                }
                return Ok(None);
            };
            let end = self.searched + offset;
            self.searched = 0;
            let mut line = src.split_to(end + 1);
            line.truncate(end);
            if line.ends_with(b"\r") {
                line.truncate(end - 1);
            }
            if line.len() > self.max_message_size {
                return Err(self.too_large(line.len()));
            }
            if line.is_empty() {
                continue;
            }
            return utf8(line).map(Some);
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, TransportError> {
        if let Some(line) = self.decode(src)? {
            return Ok(Some(line));
        }
        if src.iter().all(|&b| b == b'\r') {
            src.clear();
            return Ok(None);
        }
        Err(TransportError::Protocol(format!(
            "the stream ended in the middle of a line ({} bytes without a line end)",
            src.len()
        )))
    }
}

impl<T: AsRef<str>> Encoder<T> for LineCodec {
    type Error = TransportError;

    fn encode(&mut self, message: T, dst: &mut BytesMut) -> Result<(), TransportError> {
        let message = message.as_ref().as_bytes();
        dst.reserve(message.len() + 1);
        if message.iter().any(|&b| b == b'\n' || b == b'\r') {
            dst.extend(message.iter().map(|&b| if b == b'\n' || b == b'\r' { b' ' } else { b }));
        } else {
            dst.extend_from_slice(message);
        }
        dst.put_u8(b'\n');
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` one byte at a time, decoding after each, then the end of the stream.
    fn byte_by_byte(codec: &mut LineCodec, input: &[u8]) -> Result<Vec<Bytes>, TransportError> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for &b in input {
            buf.put_u8(b);
            while let Some(line) = codec.decode(&mut buf)? {
                out.push(line);
            }
        }
        while let Some(line) = codec.decode_eof(&mut buf)? {
            out.push(line);
        }
        Ok(out)
    }

    #[test]
    fn lines_split_across_reads_are_joined() -> Result<(), TransportError> {
        let lines = byte_by_byte(&mut LineCodec::new(100), b"{\"a\":1}\n[2]\r\n")?;
        assert_eq!(lines, [Bytes::from_static(b"{\"a\":1}"), Bytes::from_static(b"[2]")]);
        Ok(())
    }

    #[test]
    fn two_lines_in_one_read_are_two_messages() -> Result<(), TransportError> {
        let mut codec = LineCodec::new(100);
        let mut buf = BytesMut::from(&b"1\n2\n3"[..]);
        assert_eq!(codec.decode(&mut buf)?, Some(Bytes::from_static(b"1")));
        assert_eq!(codec.decode(&mut buf)?, Some(Bytes::from_static(b"2")));
        assert_eq!(codec.decode(&mut buf)?, None);
        assert_eq!(&buf[..], b"3");
        Ok(())
    }

    #[test]
    fn empty_lines_are_skipped() -> Result<(), TransportError> {
        let lines = byte_by_byte(&mut LineCodec::new(100), b"\n\r\n1\n\n\r\n2\n\n")?;
        assert_eq!(lines, [Bytes::from_static(b"1"), Bytes::from_static(b"2")]);
        Ok(())
    }

    #[test]
    fn a_line_of_exactly_the_limit_passes_and_one_byte_more_fails() {
        let ok = byte_by_byte(&mut LineCodec::new(4), b"abcd\r\nefgh\n");
        assert!(matches!(ok.as_deref(), Ok([a, b]) if a == "abcd" && b == "efgh"));
        // Found before the line ends: the fifth byte is not a `\r`.
        let mut codec = LineCodec::new(4);
        let mut buf = BytesMut::from(&b"abcde"[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(TransportError::TooLarge { size: 5, limit: 4 })
        ));
        // A `\r` past the limit is not yet an error, but a sixth byte is.
        let mut codec = LineCodec::new(4);
        let mut buf = BytesMut::from(&b"abcd\r"[..]);
        assert!(matches!(codec.decode(&mut buf), Ok(None)));
        buf.put_u8(b'x');
        assert!(matches!(codec.decode(&mut buf), Err(TransportError::TooLarge { .. })));
        // `\r` inside the line counts.
        let over = byte_by_byte(&mut LineCodec::new(4), b"ab\rcd\n");
        assert!(matches!(over, Err(TransportError::TooLarge { size: 5, limit: 4 })));
    }

    #[test]
    fn invalid_utf8_fails() {
        let result = byte_by_byte(&mut LineCodec::new(100), b"\"\xff\xfe\"\n");
        assert!(matches!(result, Err(TransportError::InvalidUtf8)));
    }

    #[test]
    fn a_stream_cut_mid_line_fails_but_a_clean_end_does_not() {
        let cut = byte_by_byte(&mut LineCodec::new(100), b"{\"a\":1}\n{\"b\"");
        assert!(matches!(cut, Err(TransportError::Protocol(_))));
        assert!(matches!(
            byte_by_byte(&mut LineCodec::new(100), b"1\n\r").as_deref(),
            Ok([_])
        ));
    }

    #[test]
    fn encoding_ends_each_message_with_one_line_break() -> Result<(), TransportError> {
        let mut codec = LineCodec::new(100);
        let mut buf = BytesMut::new();
        codec.encode("{\"a\":1}", &mut buf)?;
        codec.encode("{\r\n  \"b\": 2\n}", &mut buf)?;
        assert_eq!(&buf[..], b"{\"a\":1}\n{    \"b\": 2 }\n");
        Ok(())
    }
}
