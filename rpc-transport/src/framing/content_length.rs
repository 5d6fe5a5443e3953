//! `Content-Length` headers before each message: the Language Server Protocol's base protocol.

use bytes::{Buf, Bytes, BytesMut};
use rpc_core::TransportError;
use tokio_util::codec::{Decoder, Encoder};

use super::utf8;

/// The longest header part accepted, in bytes (its blank line included).
pub const MAX_HEADER_SIZE: usize = 8 * 1024;

/// The least room made at once for a body still arriving.
const BODY_STEP: usize = 8 * 1024;

/// Messages each after a header part, as in the base protocol of the Language Server Protocol:
///
/// ```text
/// Content-Length: 52\r\n
/// Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n
/// \r\n
/// {"jsonrpc":"2.0","method":"initialized","params":{}}
/// ```
///
/// Decoding: header names are compared without regard to case, and a header line may end with `\n` alone.
/// `Content-Length` (the body's length in bytes, decimal) is required; `Content-Type` is optional and, if it
/// names a charset, must name UTF-8 (`utf-8` or the older `utf8`); other headers are ignored. Errors, each
/// ending the connection: [`Protocol`](TransportError::Protocol) for a header part without
/// `Content-Length`, with a malformed or repeated one, with a line that is not `Name: value`, longer than
/// [`MAX_HEADER_SIZE`], or cut by the end of the stream (as is a body);
/// [`TooLarge`](TransportError::TooLarge) for a length over the limit, found before any of the body is
/// buffered; [`InvalidUtf8`](TransportError::InvalidUtf8) for a body that is not UTF-8.
///
/// The read buffer grows as the body arrives (doubling at most), not at once to the length the header
/// names: a peer that sends headers naming the limit and stalls holds kilobytes, not the limit.
///
/// Encoding: `Content-Length: N\r\n\r\n` then the message (no `Content-Type`: its default is the one meant).
#[derive(Debug, Clone)]
pub struct ContentLengthCodec {
    max_message_size: usize,
    /// The length of the body being read, once its header part is.
    body: Option<usize>,
    /// How far the buffer was searched for the end of the header part without finding it.
    searched: usize,
}

impl ContentLengthCodec {
    /// A codec accepting bodies of at most `max_message_size` bytes.
    pub fn new(max_message_size: usize) -> Self {
        Self {
            max_message_size,
            body: None,
            searched: 0,
        }
    }

    /// The body length the header part gives.
    fn parse_headers(&self, headers: &[u8]) -> Result<usize, TransportError> {
        let protocol = |why: String| TransportError::Protocol(why);
        let text = std::str::from_utf8(headers).map_err(|_| protocol("a header that is not ASCII".into()))?;
        let mut length = None;
        for line in text.split('\n') {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.is_empty() {
                continue;
            }
            let Some((name, value)) = line.split_once(':') else {
                return Err(protocol(format!(
                    "a header line that is not `Name: value`: {:?}",
                    cut(line)
                )));
            };
            let value = value.trim();
            if name.trim().eq_ignore_ascii_case("content-length") {
                if length.is_some() {
                    return Err(protocol("Content-Length given twice".into()));
                }
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(protocol(format!("a malformed Content-Length: {:?}", cut(value))));
                }
                // All digits: it only fails to parse when it does not fit, which is too large in any case.
                let size = value.parse::<usize>().unwrap_or(usize::MAX);
                if size > self.max_message_size {
                    return Err(TransportError::TooLarge {
                        size,
                        limit: self.max_message_size,
                    });
                }
                length = Some(size);
            } else if name.trim().eq_ignore_ascii_case("content-type") {
                let charset = value
                    .split(';')
                    .skip(1)
                    .filter_map(|parameter| parameter.split_once('='))
                    .find(|(key, _)| key.trim().eq_ignore_ascii_case("charset"))
                    .map(|(_, charset)| charset.trim().trim_matches('"'));
                if let Some(charset) = charset
                    && !charset.eq_ignore_ascii_case("utf-8")
                    && !charset.eq_ignore_ascii_case("utf8")
                {
                    return Err(protocol(format!("charset {:?}: only UTF-8 is spoken", cut(charset))));
                }
            }
        }
        length.ok_or_else(|| protocol("a header part without Content-Length".into()))
    }
}

/// `text` cut short for an error message.
fn cut(text: &str) -> &str {
    match text.char_indices().nth(40) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// Where the header part in `buf` ends (after its blank line), searching from `from`.
fn header_end(buf: &[u8], from: usize) -> Option<usize> {
    // The blank line is a `\n` followed by `\n` or `\r\n`. Start one byte back: the previous search may
    // have stopped between the two.
    let start = from.saturating_sub(2);
    let mut i = start;
    while let Some(offset) = buf[i..].iter().position(|&b| b == b'\n') {
        let at = i + offset;
        match buf.get(at + 1..) {
            Some([b'\n', ..]) => return Some(at + 2),
            Some([b'\r', b'\n', ..]) => return Some(at + 3),
            _ => i = at + 1,
        }
    }
    None
}

impl Decoder for ContentLengthCodec {
    type Item = Bytes;
    type Error = TransportError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, TransportError> {
        let length = match self.body {
            Some(length) => length,
            None => {
                // A header part is at least one line, so a leading `\r\n` is part of the first line's end.
                let Some(end) = header_end(src, self.searched) else {
                    if src.len() > MAX_HEADER_SIZE {
                        return Err(TransportError::Protocol(format!(
                            "a header part longer than {MAX_HEADER_SIZE} bytes"
                        )));
                    }
                    self.searched = src.len();
                    return Ok(None);
                };
                if end > MAX_HEADER_SIZE {
                    return Err(TransportError::Protocol(format!(
                        "a header part longer than {MAX_HEADER_SIZE} bytes"
                    )));
                }
                let length = self.parse_headers(&src[..end])?;
                src.advance(end);
                self.searched = 0;
                self.body = Some(length);
                length
            }
        };
        if src.len() < length {
            // Room for more of the body, growing with what arrived: at most as much again as is buffered
            // (at least `BODY_STEP`). A header alone does not make the buffer claim the length it names, up
            // to the limit, on each of a server's connections.
            src.reserve((length - src.len()).min(src.len().max(BODY_STEP)));
            return Ok(None);
        }
        self.body = None;
        utf8(src.split_to(length)).map(Some)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, TransportError> {
        if let Some(message) = self.decode(src)? {
            return Ok(Some(message));
        }
        match self.body {
            Some(length) => Err(TransportError::Protocol(format!(
                "the stream ended in the middle of a message ({} of its {length} bytes)",
                src.len()
            ))),
            None if src.iter().all(|b| b.is_ascii_whitespace()) => {
                src.clear();
                Ok(None)
            }
            None => Err(TransportError::Protocol(
                "the stream ended in the middle of a header part".into(),
            )),
        }
    }
}

impl<T: AsRef<str>> Encoder<T> for ContentLengthCodec {
    type Error = TransportError;

    fn encode(&mut self, message: T, dst: &mut BytesMut) -> Result<(), TransportError> {
        let message = message.as_ref().as_bytes();
        let header = format!("Content-Length: {}\r\n\r\n", message.len());
        dst.reserve(header.len() + message.len());
        dst.extend_from_slice(header.as_bytes());
        dst.extend_from_slice(message);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::BufMut;

    use super::*;

    fn byte_by_byte(codec: &mut ContentLengthCodec, input: &[u8]) -> Result<Vec<Bytes>, TransportError> {
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for &b in input {
            buf.put_u8(b);
            while let Some(message) = codec.decode(&mut buf)? {
                out.push(message);
            }
        }
        while let Some(message) = codec.decode_eof(&mut buf)? {
            out.push(message);
        }
        Ok(out)
    }

    fn all_at_once(codec: &mut ContentLengthCodec, input: &[u8]) -> Result<Vec<Bytes>, TransportError> {
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(message) = codec.decode_eof(&mut buf)? {
            out.push(message);
        }
        Ok(out)
    }

    const TWO: &[u8] = b"Content-Length: 7\r\n\r\n{\"a\":1}content-length:3\r\nContent-Type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n[2]";

    #[test]
    fn messages_split_across_reads_are_joined_and_headers_ignore_case() -> Result<(), TransportError> {
        let expected = [Bytes::from_static(b"{\"a\":1}"), Bytes::from_static(b"[2]")];
        assert_eq!(byte_by_byte(&mut ContentLengthCodec::new(100), TWO)?, expected);
        assert_eq!(all_at_once(&mut ContentLengthCodec::new(100), TWO)?, expected);
        Ok(())
    }

    #[test]
    fn header_lines_may_end_with_a_bare_line_feed() -> Result<(), TransportError> {
        let got = byte_by_byte(
            &mut ContentLengthCodec::new(100),
            b"CONTENT-LENGTH:  2 \nX-Other: y\n\n{}",
        )?;
        assert_eq!(got, [Bytes::from_static(b"{}")]);
        Ok(())
    }

    #[test]
    fn encoding_round_trips() -> Result<(), TransportError> {
        let mut codec = ContentLengthCodec::new(100);
        let mut buf = BytesMut::new();
        codec.encode("{\"é\":1}", &mut buf)?;
        assert_eq!(&buf[..], "Content-Length: 8\r\n\r\n{\"é\":1}".as_bytes());
        assert_eq!(codec.decode(&mut buf)?, Some(Bytes::from("{\"é\":1}")));
        Ok(())
    }

    #[test]
    fn a_body_of_exactly_the_limit_passes_and_one_byte_more_fails_before_it_is_read() {
        assert!(matches!(
            all_at_once(&mut ContentLengthCodec::new(3), b"Content-Length: 3\r\n\r\n[1]").as_deref(),
            Ok([m]) if m == "[1]"
        ));
        // Only the header part was sent: the error does not wait for the body.
        let mut codec = ContentLengthCodec::new(3);
        let mut buf = BytesMut::from(&b"Content-Length: 4\r\n\r\n"[..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(TransportError::TooLarge { size: 4, limit: 3 })
        ));
        let huge = all_at_once(
            &mut ContentLengthCodec::new(3),
            b"Content-Length: 99999999999999999999999\r\n\r\n",
        );
        assert!(matches!(huge, Err(TransportError::TooLarge { .. })));
    }

    #[test]
    fn a_header_naming_a_large_body_does_not_make_room_for_all_of_it_before_it_arrives() -> Result<(), TransportError> {
        let limit = 4 * 1024 * 1024;
        let mut codec = ContentLengthCodec::new(limit);
        let mut buf = BytesMut::from(&format!("Content-Length: {limit}\r\n\r\n{{")[..]);
        assert_eq!(codec.decode(&mut buf)?, None);
        assert!(buf.capacity() <= 2 * BODY_STEP, "{} bytes of room", buf.capacity());
        // The body arriving in pieces still comes out whole.
        let mut body = String::from("{");
        while body.len() < limit - 1 {
            let piece = "a".repeat((limit - 1 - body.len()).min(100_000));
            buf.extend_from_slice(piece.as_bytes());
            body.push_str(&piece);
            assert_eq!(codec.decode(&mut buf)?, None);
        }
        buf.extend_from_slice(b"}");
        body.push('}');
        assert_eq!(codec.decode(&mut buf)?.as_deref(), Some(body.as_bytes()));
        Ok(())
    }

    #[test]
    fn malformed_headers_are_protocol_errors() {
        for input in [
            &b"Content-Type: application/json\r\n\r\n{}"[..],
            b"Content-Length: -2\r\n\r\n{}",
            b"Content-Length: 2x\r\n\r\n{}",
            b"Content-Length:\r\n\r\n{}",
            b"Content-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
            b"GET / HTTP/1.1\r\n\r\n",
            b"{\"jsonrpc\":\"2.0\"}\n\n",
            b"Content-Length: 2\r\nContent-Type: text/plain; charset=latin1\r\n\r\n{}",
        ] {
            let result = all_at_once(&mut ContentLengthCodec::new(100), input);
            assert!(
                matches!(result, Err(TransportError::Protocol(_))),
                "{:?}: {result:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn a_header_part_without_end_fails_past_its_limit() {
        let mut codec = ContentLengthCodec::new(100);
        let mut buf = BytesMut::from(&vec![b'x'; MAX_HEADER_SIZE + 1][..]);
        assert!(matches!(codec.decode(&mut buf), Err(TransportError::Protocol(_))));
    }

    #[test]
    fn invalid_utf8_fails() {
        let result = all_at_once(&mut ContentLengthCodec::new(100), b"Content-Length: 2\r\n\r\n\xff\xfe");
        assert!(matches!(result, Err(TransportError::InvalidUtf8)));
    }

    #[test]
    fn a_stream_cut_mid_message_fails_but_a_clean_end_does_not() {
        for cut in [
            &b"Content-Length: 7\r\n\r\n{\"a\""[..],
            b"Content-Len",
            b"Content-Length: 7\r\n",
        ] {
            let result = byte_by_byte(&mut ContentLengthCodec::new(100), cut);
            assert!(matches!(result, Err(TransportError::Protocol(_))), "{result:?}");
        }
        assert!(matches!(
            byte_by_byte(&mut ContentLengthCodec::new(100), b"Content-Length: 2\r\n\r\n{}\r\n").as_deref(),
            Ok([_])
        ));
    }
}
