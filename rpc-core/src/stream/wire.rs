//! The messages of the stream protocol (`docs/streams.md`), encoded and parsed without IO.

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::error_object::ErrorObject;
use crate::message;

/// Announces a download whose consumer grants credits: `{"id": ID, "window": N}`, sent right before the
/// request with that id.
pub(crate) const OPEN: &str = "$/stream.open";
/// Grants a producer more items: `{"subscription": S, "credit": N}`.
pub(crate) const CREDIT: &str = "$/stream.credit";
/// Stops a stream from its consumer's side: `{"subscription": S}` or `[S]`.
pub(crate) const CANCEL: &str = "$/stream.cancel";
/// Ends a stream from its producer's side: `{"subscription": S}`, with `"error"` when it failed.
pub(crate) const END: &str = "$/stream.end";

/// The most credit a producer holds (2^31 − 1 items), and the most one grant may give.
pub(crate) const MAX_CREDIT: u64 = (1 << 31) - 1;

/// Whether `method` is one of the protocol's own notifications.
pub(crate) fn is_control(method: &str) -> bool {
    method.starts_with("$/stream.")
}

/// One item of stream `id`, under the stream method's name.
pub(crate) fn encode_item<T: Serialize + ?Sized>(method: &str, id: u64, item: &T) -> Result<String, serde_json::Error> {
    #[derive(Serialize)]
    struct Item<'a, T: ?Sized> {
        subscription: u64,
        result: &'a T,
    }
    message::encode_call(
        None,
        method,
        Some(&Item {
            subscription: id,
            result: item,
        }),
    )
}

/// The end of stream `id`, failed with `error` if given.
pub(crate) fn encode_end(id: u64, error: Option<&ErrorObject>) -> String {
    #[derive(Serialize)]
    struct End<'a> {
        subscription: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<&'a ErrorObject>,
    }
    message::encode_call(
        None,
        END,
        Some(&End {
            subscription: id,
            error,
        }),
    )
    .unwrap_or_else(|_| format!(r#"{{"jsonrpc":"2.0","method":"{END}","params":{{"subscription":{id}}}}}"#))
}

/// A grant of `credit` items to the other side's stream whose id is the JSON text `subscription`.
pub(crate) fn encode_credit(subscription: &RawValue, credit: u64) -> String {
    #[derive(Serialize)]
    struct Credit<'a> {
        subscription: &'a RawValue,
        credit: u64,
    }
    encode_notice(CREDIT, &Credit { subscription, credit })
}

/// A cancel of the other side's stream whose id is the JSON text `subscription`.
pub(crate) fn encode_cancel(subscription: &RawValue) -> String {
    #[derive(Serialize)]
    struct Cancel<'a> {
        subscription: &'a RawValue,
    }
    encode_notice(CANCEL, &Cancel { subscription })
}

/// The announcement of a download: the request `id`, sent next, is consumed with `window` credits.
pub(crate) fn encode_open(id: u64, window: u32) -> String {
    #[derive(Serialize)]
    struct Open {
        id: u64,
        window: u32,
    }
    encode_notice(OPEN, &Open { id, window })
}

fn encode_notice<P: Serialize>(method: &str, params: &P) -> String {
    // These params hold numbers and JSON text already checked: encoding them cannot fail.
    message::encode_call(None, method, Some(params)).unwrap_or_default()
}

/// A received stream message, parsed.
#[derive(Debug)]
pub(crate) enum Control {
    /// `$/stream.open`: the request whose id is this JSON text is consumed with this window.
    Open { id: Box<str>, window: u64 },
    /// `$/stream.credit` for one of this side's streams.
    Credit { subscription: u64, credit: u64 },
    /// `$/stream.cancel` for one of this side's streams.
    Cancel { subscription: u64 },
    /// An item (`result`), or an end (`$/stream.end`, or `error` under the method's name), for a stream
    /// the other side produces, named by its id's JSON text.
    Payload { subscription: Box<str>, payload: Payload },
}

/// What a producer sent for a stream.
#[derive(Debug)]
pub(crate) enum Payload {
    /// An item: its JSON text, a slice of the received frame.
    Item(Bytes),
    /// The end, failed with an error object if present.
    End(Option<ErrorObject>),
}

#[derive(Deserialize)]
struct Subscription<'a> {
    #[serde(borrow)]
    subscription: &'a RawValue,
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
    /// An error object as birpc sends it, or any other JSON value (a jsonrpsee server sends a string).
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

/// The error a producer ended a stream with: its error object, or, for any other value, an error object
/// carrying it (-32603, the value as data; a string also as the message).
fn end_error(error: &RawValue) -> ErrorObject {
    if let Ok(object) = serde_json::from_str::<ErrorObject>(error.get()) {
        return object;
    }
    let message = serde_json::from_str::<String>(error.get())
        .unwrap_or_else(|_| "the producer ended the stream with an error".to_owned());
    let object = ErrorObject::new(crate::error_object::code::INTERNAL_ERROR, message);
    match RawValue::from_string(error.get().to_owned()) {
        Ok(data) => object.with_raw_data(data),
        Err(_) => object,
    }
}

/// Parses a notification that may belong to the stream protocol: a control message (`$/stream.*`), or
/// params of the item shape `{"subscription": S, "result" | "error": …}` under any method. `None` when
/// it is neither (an ordinary notification, or a control message too malformed to act on).
pub(crate) fn parse(method: &str, params: Option<&Bytes>) -> Option<Control> {
    let params = params?;
    match method {
        OPEN => {
            #[derive(Deserialize)]
            struct Open<'a> {
                #[serde(borrow)]
                id: &'a RawValue,
                window: u64,
            }
            let open: Open<'_> = serde_json::from_slice(params).ok()?;
            Some(Control::Open {
                id: open.id.get().into(),
                window: open.window,
            })
        }
        CREDIT => {
            #[derive(Deserialize)]
            struct Credit {
                subscription: u64,
                credit: u64,
            }
            let credit: Credit = serde_json::from_slice(params).ok()?;
            Some(Control::Credit {
                subscription: credit.subscription,
                credit: credit.credit,
            })
        }
        CANCEL => Some(Control::Cancel {
            subscription: cancelled(params)?,
        }),
        END => {
            let end: Subscription<'_> = serde_json::from_slice(params).ok()?;
            Some(Control::Payload {
                subscription: end.subscription.get().into(),
                payload: Payload::End(end.error.map(end_error)),
            })
        }
        _ => {
            // Cheap test first: most notifications are not items.
            if !params.starts_with(b"{") || memchr_subscription(params).is_none() {
                return None;
            }
            let item: Subscription<'_> = serde_json::from_slice(params).ok()?;
            let payload = match (item.result, item.error) {
                (Some(result), None) => Payload::Item(params.slice_ref(result.get().as_bytes())),
                (None, Some(error)) => Payload::End(Some(end_error(error))),
                _ => return None,
            };
            Some(Control::Payload {
                subscription: item.subscription.get().into(),
                payload,
            })
        }
    }
}

/// The stream a `$/stream.cancel` names: `{"subscription": S}` or `[S]`.
pub(crate) fn cancelled(params: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Cancel {
        Named { subscription: u64 },
        Positional((u64,)),
    }
    match serde_json::from_slice::<Cancel>(params).ok()? {
        Cancel::Named { subscription } | Cancel::Positional((subscription,)) => Some(subscription),
    }
}

fn memchr_subscription(params: &[u8]) -> Option<usize> {
    const KEY: &[u8] = b"\"subscription\"";
    params.windows(KEY.len()).position(|window| window == KEY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(json: &str) -> Bytes {
        Bytes::copy_from_slice(json.as_bytes())
    }

    #[test]
    fn items_and_ends_parse_under_any_method() {
        let frame = params(r#"{"subscription":"0xab","result":{"price":1.5}}"#);
        match parse("prices", Some(&frame)) {
            Some(Control::Payload {
                subscription,
                payload: Payload::Item(item),
            }) => {
                assert_eq!(&*subscription, r#""0xab""#);
                assert_eq!(&item[..], br#"{"price":1.5}"#);
            }
            other => panic!("{other:?}"),
        }
        let failed = params(r#"{"subscription":3,"error":{"code":5,"message":"no"}}"#);
        assert!(matches!(
            parse("prices", Some(&failed)),
            Some(Control::Payload { payload: Payload::End(Some(e)), .. }) if e.code() == 5
        ));
        // A jsonrpsee server fails a subscription with a string.
        let failed = params(r#"{"subscription":3,"error":"the feed broke"}"#);
        match parse("prices", Some(&failed)) {
            Some(Control::Payload {
                payload: Payload::End(Some(error)),
                ..
            }) => {
                assert_eq!((error.code(), error.message()), (-32603, "the feed broke"));
                assert_eq!(error.data().unwrap().get(), r#""the feed broke""#);
            }
            other => panic!("{other:?}"),
        }
        let end = params(r#"{"subscription":3}"#);
        assert!(matches!(
            parse(END, Some(&end)),
            Some(Control::Payload {
                payload: Payload::End(None),
                ..
            })
        ));
        // Ordinary notifications are not taken for items.
        assert!(parse("chat", Some(&params(r#"{"text":"hi"}"#))).is_none());
        assert!(parse("chat", Some(&params(r#"["subscription"]"#))).is_none());
        assert!(parse("chat", None).is_none());
    }

    #[test]
    fn control_messages_round_trip() {
        let id = RawValue::from_string("7".into()).unwrap();
        let credit = encode_credit(&id, 32);
        assert_eq!(
            credit,
            r#"{"jsonrpc":"2.0","method":"$/stream.credit","params":{"subscription":7,"credit":32}}"#
        );
        assert!(matches!(
            parse(CREDIT, Some(&params(r#"{"subscription":7,"credit":32}"#))),
            Some(Control::Credit {
                subscription: 7,
                credit: 32
            })
        ));
        assert_eq!(cancelled(br#"[7]"#), Some(7));
        assert_eq!(cancelled(br#"{"subscription":7}"#), Some(7));
        assert_eq!(cancelled(br#"{"subscription":"x"}"#), None);
        assert_eq!(
            encode_open(4, 64),
            r#"{"jsonrpc":"2.0","method":"$/stream.open","params":{"id":4,"window":64}}"#
        );
        assert_eq!(
            encode_item("ticks", 1, &5).unwrap(),
            r#"{"jsonrpc":"2.0","method":"ticks","params":{"subscription":1,"result":5}}"#
        );
        assert_eq!(
            encode_end(1, Some(&ErrorObject::new(3, "x"))),
            r#"{"jsonrpc":"2.0","method":"$/stream.end","params":{"subscription":1,"error":{"code":3,"message":"x"}}}"#
        );
    }
}
