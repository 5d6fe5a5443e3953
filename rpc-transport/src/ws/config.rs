//! The tungstenite settings that follow from a peer's limits.

use rpc_core::PeerConfig;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The WebSocket settings for a peer with `config`: no message or frame larger than its maximum message
/// size is accepted.
pub(crate) fn websocket_config(config: &PeerConfig) -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(config.max_message_size))
        .max_frame_size(Some(config.max_message_size))
}
