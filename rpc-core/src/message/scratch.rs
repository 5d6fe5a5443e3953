//! The buffer messages are encoded in: one per thread, reused, so that a message is allocated once, at
//! its exact size.
//!
//! Encoded straight into a vector of its own, a message ends with spare capacity (the vector grows while
//! the params are written). The WebSocket layer then makes it a `Bytes` (tungstenite's text payload),
//! and a vector with spare capacity takes a second allocation there (a reference count, dropped with an
//! atomic operation once the frame is written). Written here first, a message is copied out into a
//! vector exactly its length: one allocation per message, none for growing, no count.

use std::cell::RefCell;

/// The longest message copied out of the buffer, in bytes. A longer one takes the buffer's storage with
/// it (no copy; the thread's next message starts a new buffer), so a buffer keeps at most twice this
/// (a vector doubles as it grows) between messages: 8 KiB per thread that encodes messages.
pub(crate) const COPIED_UP_TO: usize = 4 << 10;

thread_local! {
    static BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `write` on an empty buffer and returns what it wrote: a vector whose capacity is its length when
/// it is at most [`COPIED_UP_TO`] bytes. The error is `write`'s.
///
/// Where the thread's buffer cannot be had (it is in use: a `Serialize` impl encoding a message while one
/// is encoded; or the thread is ending), `write` runs on a vector of its own, returned as it is.
pub(crate) fn encode<E>(mut write: impl FnMut(&mut Vec<u8>) -> Result<(), E>) -> Result<Vec<u8>, E> {
    let reused = BUFFER.try_with(|cell| {
        let mut buffer = cell.try_borrow_mut().ok()?;
        buffer.clear();
        Some(write(&mut buffer).map(|()| take_out(&mut buffer)))
    });
    match reused {
        Ok(Some(written)) => written,
        _ => {
            let mut own = Vec::new();
            write(&mut own).map(|()| own)
        }
    }
}

/// What `buffer` holds, at its exact size when it is short enough to copy.
fn take_out(buffer: &mut Vec<u8>) -> Vec<u8> {
    if buffer.len() <= COPIED_UP_TO {
        buffer.as_slice().to_vec()
    } else {
        std::mem::take(buffer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept() -> usize {
        BUFFER.with(|cell| cell.borrow().capacity())
    }

    #[test]
    fn a_short_message_is_copied_out_at_its_exact_size_and_the_buffer_is_reused() {
        let first = encode::<()>(|out| {
            out.extend_from_slice(b"{\"a\":1}");
            Ok(())
        })
        .unwrap();
        assert_eq!(first, b"{\"a\":1}");
        assert_eq!(first.capacity(), first.len());
        let storage = kept();
        assert!(storage >= first.len());
        let second = encode::<()>(|out| {
            assert!(out.is_empty(), "each message starts on an empty buffer");
            out.extend_from_slice(b"[]");
            Ok(())
        })
        .unwrap();
        assert_eq!((second.as_slice(), second.capacity()), (b"[]".as_slice(), 2));
        assert_eq!(kept(), storage, "the same storage again");
    }

    #[test]
    fn a_long_message_takes_the_buffer_with_it() {
        let long = vec![b'x'; COPIED_UP_TO + 1];
        let taken = encode::<()>(|out| {
            out.extend_from_slice(&long);
            Ok(())
        })
        .unwrap();
        assert_eq!(taken, long);
        assert_eq!(kept(), 0, "nothing kept for the thread's next message");
        let at_limit = vec![b'y'; COPIED_UP_TO];
        let copied = encode::<()>(|out| {
            out.extend_from_slice(&at_limit);
            Ok(())
        })
        .unwrap();
        assert_eq!((copied.len(), copied.capacity()), (COPIED_UP_TO, COPIED_UP_TO));
        assert!(kept() <= 2 * COPIED_UP_TO, "the bound the buffer's doc gives");
    }

    #[test]
    fn an_error_is_returned_and_the_next_message_starts_empty() {
        let failed = encode(|out| {
            out.extend_from_slice(b"{\"half");
            Err("cannot encode")
        });
        assert_eq!(failed, Err("cannot encode"));
        let next = encode::<()>(|out| {
            out.extend_from_slice(b"1");
            Ok(())
        })
        .unwrap();
        assert_eq!(next, b"1");
    }

    #[test]
    fn a_message_encoded_while_one_is_encoded_gets_a_buffer_of_its_own() {
        let outer = encode::<()>(|out| {
            out.extend_from_slice(b"[");
            let inner = encode::<()>(|inner| {
                inner.extend_from_slice(b"2");
                Ok(())
            })
            .unwrap();
            out.extend_from_slice(&inner);
            out.push(b']');
            Ok(())
        })
        .unwrap();
        assert_eq!(outer, b"[2]");
    }
}
