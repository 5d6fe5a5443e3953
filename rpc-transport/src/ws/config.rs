//! The tungstenite settings that follow from a peer's limits and the transport's buffer sizes.

use rpc_core::PeerConfig;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The default size of a connection's read buffer: small, because every idle connection holds one (the
/// buffer grows for a large message while it is read, in reads of this size).
pub(crate) const DEFAULT_READ_BUFFER: usize = 2 << 10;

/// The default amount of written data buffered before it is handed to the socket (a flush always writes
/// everything; the writer flushes after every burst of frames).
pub(crate) const DEFAULT_WRITE_BUFFER: usize = 8 << 10;

/// The WebSocket settings for a peer with `config`: no message or frame larger than its maximum message
/// size is accepted, and the write buffer cannot grow past one message beyond its target.
pub(crate) fn websocket_config(config: &PeerConfig, read_buffer: usize, write_buffer: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(config.max_message_size))
        .max_frame_size(Some(config.max_message_size))
        .read_buffer_size(read_buffer.max(256))
        .write_buffer_size(write_buffer)
        .max_write_buffer_size(
            write_buffer
                .saturating_add(config.max_message_size)
                .saturating_add(64 << 10),
        )
}
