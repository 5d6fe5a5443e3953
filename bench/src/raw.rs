//! The floor: JSON-RPC by hand on tokio-tungstenite, with no JSON-RPC library.
//!
//! Both roles use the same two loops on an unsplit `WebSocketStream`, in one task per connection:
//! - [`answer`] reads each message, parses it with serde_json into a small struct (id, method, params),
//!   computes the answer and feeds `{"jsonrpc":"2.0","id":..,"result":..}` to the socket; it flushes only
//!   when no further message is ready, so a burst of requests is answered with one write.
//! - [`drive`] keeps a fixed number of calls in flight: each answer is parsed, checked and timed, and a new
//!   call is fed in its place until the deadline; again one flush per burst.
//!
//! Ids are the slot numbers `0..inflight`: a slot's next call is sent only once its previous one is
//! answered, so no two calls in flight share an id, and matching an answer is an index.

use std::borrow::Cow;
use std::time::Instant;

use futures::{FutureExt, SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::common::{BoxError, Impl, Payload, Result, check, since};

/// The WebSocket settings of floor `imp`, on both sides: tungstenite's defaults, but for [`Impl::Raw`] the
/// read and write buffers are birpc's (2 KiB read, 8 KiB write), so that it and birpc differ only above the
/// WebSocket layer. [`Impl::RawDefault`] keeps tungstenite's 128 KiB read buffer (zeroed on every read and
/// held by every idle connection) and its 128 KiB write buffer threshold.
pub(crate) fn config(imp: Impl) -> WebSocketConfig {
    match imp {
        Impl::RawDefault => WebSocketConfig::default(),
        _ => WebSocketConfig::default()
            .read_buffer_size(2 << 10)
            .write_buffer_size(8 << 10),
    }
}

/// A request as the floor parses it.
#[derive(Deserialize)]
struct Request<'a> {
    #[serde(borrow)]
    id: &'a RawValue,
    #[serde(borrow)]
    method: Cow<'a, str>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
}

/// A successful response.
#[derive(Serialize)]
struct Response<'a, T> {
    jsonrpc: &'static str,
    id: &'a RawValue,
    result: T,
}

/// An error response (only for an unknown method).
#[derive(Serialize)]
struct ErrorResponse<'a> {
    jsonrpc: &'static str,
    id: &'a RawValue,
    error: ErrorBody,
}

#[derive(Serialize)]
struct ErrorBody {
    code: i32,
    message: &'static str,
}

/// A request as the floor sends it.
#[derive(Serialize)]
struct Call<'a, P> {
    jsonrpc: &'static str,
    id: usize,
    method: &'a str,
    params: P,
}

/// A response as the floor parses it.
#[derive(Deserialize)]
struct Reply<'a> {
    id: usize,
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
}

/// The answer to one request.
fn respond(frame: &[u8]) -> Result<String> {
    let request: Request<'_> = serde_json::from_slice(frame)?;
    let params = request.params.map_or("[]", RawValue::get);
    let id = request.id;
    Ok(match &*request.method {
        "add" => {
            let (a, b): (i64, i64) = serde_json::from_str(params)?;
            serde_json::to_string(&Response {
                jsonrpc: "2.0",
                id,
                result: a.wrapping_add(b),
            })?
        }
        "echo" => {
            let (text,): (String,) = serde_json::from_str(params)?;
            serde_json::to_string(&Response {
                jsonrpc: "2.0",
                id,
                result: text,
            })?
        }
        _ => serde_json::to_string(&ErrorResponse {
            jsonrpc: "2.0",
            id,
            error: ErrorBody {
                code: -32601,
                message: "Method not found",
            },
        })?,
    })
}

/// The text of a data message; `None` for control messages.
fn data(message: &Message) -> Option<&[u8]> {
    match message {
        Message::Text(text) => Some(text.as_bytes()),
        Message::Binary(bytes) => Some(bytes),
        _ => None,
    }
}

/// The next message if one is ready now, without waiting; `Ok(None)` when none is, `Err` when the
/// connection ended.
fn ready<S>(ws: &mut WebSocketStream<S>) -> Result<Option<Message>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match ws.next().now_or_never() {
        None => Ok(None),
        Some(Some(Ok(message))) => Ok(Some(message)),
        Some(Some(Err(error))) => Err(error.into()),
        Some(None) => Err(ended()),
    }
}

/// The next message, flushing what was fed first if none is ready.
async fn next<S>(ws: &mut WebSocketStream<S>) -> Result<Message>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if let Some(message) = ready(ws)? {
        return Ok(message);
    }
    ws.flush().await?;
    match ws.next().await {
        Some(Ok(message)) => Ok(message),
        Some(Err(error)) => Err(error.into()),
        None => Err(ended()),
    }
}

fn ended() -> BoxError {
    Box::new(WsError::ConnectionClosed)
}

/// Answers `message` if it is a request (feeding the answer, not flushing).
async fn answer_one<S>(ws: &mut WebSocketStream<S>, message: &Message) -> Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if let Some(frame) = data(message) {
        ws.feed(Message::text(respond(frame)?)).await?;
    }
    Ok(())
}

/// Answers `first` and every further message ready now, then flushes.
pub(crate) async fn answer_burst<S>(ws: &mut WebSocketStream<S>, first: &Message) -> Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    answer_one(ws, first).await?;
    while let Some(message) = ready(ws)? {
        answer_one(ws, &message).await?;
    }
    ws.flush().await?;
    Ok(())
}

/// Answers requests until the connection ends.
pub(crate) async fn answer<S>(mut ws: WebSocketStream<S>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(Ok(message)) = ws.next().await {
        if answer_burst(&mut ws, &message).await.is_err() {
            return;
        }
    }
}

/// The request of slot `slot`, its `n`th call overall.
fn request(slot: usize, n: i64, payload: &Payload) -> Result<Message> {
    let text = match payload {
        Payload::Add => serde_json::to_string(&Call {
            jsonrpc: "2.0",
            id: slot,
            method: "add",
            params: (n, 1),
        })?,
        Payload::Echo(text) => serde_json::to_string(&Call {
            jsonrpc: "2.0",
            id: slot,
            method: "echo",
            params: (&**text,),
        })?,
    };
    Ok(Message::text(text))
}

/// Checks an answer; returns its slot.
fn take_answer(frame: &[u8], expected: &[i64], payload: &Payload) -> Result<usize> {
    let reply: Reply<'_> = serde_json::from_slice(frame)?;
    let result = reply.result.ok_or("an error response")?.get();
    let slot = reply.id;
    check(slot < expected.len(), "an unknown id")?;
    match payload {
        Payload::Add => {
            let sum: i64 = serde_json::from_str(result)?;
            check(sum == expected[slot] + 1, "add")?;
        }
        Payload::Echo(text) => {
            let back: String = serde_json::from_str(result)?;
            check(back.len() == text.len(), "echo")?;
        }
    }
    Ok(slot)
}

/// Keeps `inflight` calls going until `deadline`, then waits for the last answers; returns each call's
/// latency in nanoseconds.
pub(crate) async fn drive<S>(
    ws: &mut WebSocketStream<S>,
    inflight: usize,
    deadline: Instant,
    payload: &Payload,
) -> Result<Vec<u64>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut latencies = Vec::new();
    let start = Instant::now();
    let mut sent_at = vec![start; inflight];
    // The `n` of each slot's call in flight: slot `i` starts with call `i`.
    let mut expected: Vec<i64> = (0..inflight).map(|slot| slot as i64).collect();
    for (slot, &n) in expected.iter().enumerate() {
        ws.feed(request(slot, n, payload)?).await?;
    }
    let mut n = inflight as i64;
    let mut outstanding = inflight;
    while outstanding > 0 {
        let message = next(ws).await?;
        let Some(frame) = data(&message) else { continue };
        let slot = take_answer(frame, &expected, payload)?;
        latencies.push(since(sent_at[slot]));
        outstanding -= 1;
        if Instant::now() < deadline {
            sent_at[slot] = Instant::now();
            ws.feed(request(slot, n, payload)?).await?;
            expected[slot] = n;
            n += 1;
            outstanding += 1;
        }
    }
    ws.flush().await?;
    Ok(latencies)
}
