//! Cutting a byte stream into JSON-RPC messages: tokio-util codecs with the same size limit as WebSocket.
//!
//! - [`LineCodec`]: one message a line (JSON Lines / NDJSON, as Model Context Protocol servers speak over
//!   stdio);
//! - [`ContentLengthCodec`]: a `Content-Length` header before each message (the base protocol of the
//!   Language Server Protocol);
//! - [`FrameCodec`]: either, chosen by a [`Framing`].
//!
//! Every decoder fails with a [`TransportError`] the peer turns into the end of
//! the connection: [`TooLarge`](rpc_core::TransportError::TooLarge) for a message over the limit (found
//! before its body is buffered), [`InvalidUtf8`](rpc_core::TransportError::InvalidUtf8), and
//! [`Protocol`](rpc_core::TransportError::Protocol) for a malformed header or a stream that ends in the
//! middle of a message. Buffering is left to tokio-util's `FramedRead` and `FramedWrite`.

mod content_length;
mod lines;

use std::fmt;
use std::str::FromStr;

use bytes::{Bytes, BytesMut};
use rpc_core::TransportError;
use tokio_util::codec::{Decoder, Encoder};

pub use content_length::{ContentLengthCodec, MAX_HEADER_SIZE};
pub use lines::LineCodec;

/// How messages are delimited on a byte stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Framing {
    /// One message a line, ended by `\n` (a `\r` before it is dropped); empty lines are skipped. JSON Lines
    /// (NDJSON). Written as `lines` in URLs.
    #[default]
    Lines,
    /// `Content-Length: N` (bytes), an optional `Content-Type`, a blank line, then the body: the Language
    /// Server Protocol's base protocol. Written as `content-length` in URLs.
    ContentLength,
}

impl Framing {
    /// The codec for this framing, accepting messages of at most `max_message_size` bytes.
    pub fn codec(self, max_message_size: usize) -> FrameCodec {
        match self {
            Framing::Lines => FrameCodec::Lines(LineCodec::new(max_message_size)),
            Framing::ContentLength => FrameCodec::ContentLength(ContentLengthCodec::new(max_message_size)),
        }
    }

    /// The name used in URLs: `lines` or `content-length`.
    pub fn as_str(self) -> &'static str {
        match self {
            Framing::Lines => "lines",
            Framing::ContentLength => "content-length",
        }
    }
}

impl fmt::Display for Framing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A framing name other than `lines` and `content-length`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown framing {0:?}: expected `lines` or `content-length`")]
pub struct UnknownFraming(pub String);

impl FromStr for Framing {
    type Err = UnknownFraming;

    /// `lines` or `content-length`, in any case.
    fn from_str(s: &str) -> Result<Self, UnknownFraming> {
        if s.eq_ignore_ascii_case("lines") {
            Ok(Framing::Lines)
        } else if s.eq_ignore_ascii_case("content-length") {
            Ok(Framing::ContentLength)
        } else {
            Err(UnknownFraming(s.to_owned()))
        }
    }
}

/// The codec of a [`Framing`]: decodes messages as [`Bytes`] (checked to be UTF-8), encodes any string.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum FrameCodec {
    /// See [`LineCodec`].
    Lines(LineCodec),
    /// See [`ContentLengthCodec`].
    ContentLength(ContentLengthCodec),
}

impl Decoder for FrameCodec {
    type Item = Bytes;
    type Error = TransportError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, TransportError> {
        match self {
            FrameCodec::Lines(codec) => codec.decode(src),
            FrameCodec::ContentLength(codec) => codec.decode(src),
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Bytes>, TransportError> {
        match self {
            FrameCodec::Lines(codec) => codec.decode_eof(src),
            FrameCodec::ContentLength(codec) => codec.decode_eof(src),
        }
    }
}

impl<T: AsRef<str>> Encoder<T> for FrameCodec {
    type Error = TransportError;

    fn encode(&mut self, message: T, dst: &mut BytesMut) -> Result<(), TransportError> {
        match self {
            FrameCodec::Lines(codec) => codec.encode(message, dst),
            FrameCodec::ContentLength(codec) => codec.encode(message, dst),
        }
    }
}

/// `bytes` as a message: checked to be UTF-8.
fn utf8(bytes: BytesMut) -> Result<Bytes, TransportError> {
    match std::str::from_utf8(&bytes) {
        Ok(_) => Ok(bytes.freeze()),
        Err(_) => Err(TransportError::InvalidUtf8),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framings_are_named_as_in_urls() {
        for framing in [Framing::Lines, Framing::ContentLength] {
            assert_eq!(framing.to_string().parse::<Framing>(), Ok(framing));
        }
        assert_eq!("Content-Length".parse::<Framing>(), Ok(Framing::ContentLength));
        assert!("lsp".parse::<Framing>().is_err());
        assert_eq!(Framing::default(), Framing::Lines);
    }
}
