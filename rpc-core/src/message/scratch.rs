//! The buffer messages are encoded in: one per thread, reused, so that a message is allocated once, at
//! its exact size.
//!
//! Encoded straight into a vector of its own, a message ends with spare capacity (the vector grows while
//! the params are written). The WebSocket layer then makes it a `Bytes` (tungstenite's text payload),
//! and a vector with spare capacity takes a second allocation there (a reference count, dropped with an
//! atomic operation once the frame is written). Written here first, a message is copied out into a
//! vector exactly its length: one allocation per message, none for growing, no count.

use std::cell::Cell;

/// The longest message copied out of the buffer, in bytes. A longer one takes the buffer's storage with
/// it (no copy; the thread's next message starts a new buffer).
pub(crate) const COPIED_UP_TO: usize = 4 << 10;

/// The most storage a thread keeps between messages, in bytes: a buffer grown larger (by a message that
/// could not be encoded after writing this much) is freed.
const KEPT_UP_TO: usize = 2 * COPIED_UP_TO;

thread_local! {
    /// Empty while a message is being encoded on the thread: the buffer is taken out for it.
    static BUFFER: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Runs `write` on an empty buffer and returns what it wrote: a vector whose capacity is its length when
/// it is at most [`COPIED_UP_TO`] bytes. The error is `write`'s; what it wrote is then dropped.
///
/// The buffer is taken out of the thread's slot while `write` runs, so a message encoded meanwhile (by a
/// `Serialize` impl) starts a buffer of its own, and a panic in `write` drops the buffer with the rest.
pub(crate) fn encode<E>(write: impl FnOnce(&mut Vec<u8>) -> Result<(), E>) -> Result<Vec<u8>, E> {
    // The thread is ending when its slot is gone: a buffer for this message alone.
    let mut buffer = BUFFER.try_with(Cell::take).unwrap_or_default();
    buffer.clear();
    if let Err(error) = write(&mut buffer) {
        keep(buffer);
        return Err(error);
    }
    if buffer.len() > COPIED_UP_TO {
        return Ok(buffer);
    }
    let message = buffer.as_slice().to_vec();
    keep(buffer);
    Ok(message)
}

/// Puts `buffer` back in the thread's slot for the next message, unless it is larger than
/// [`KEPT_UP_TO`].
fn keep(buffer: Vec<u8>) {
    if buffer.capacity() <= KEPT_UP_TO {
        // Gone only while the thread ends: the buffer is dropped then.
        let _ = BUFFER.try_with(|slot| slot.set(buffer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept() -> usize {
        BUFFER.with(|slot| {
            let buffer = slot.take();
            let capacity = buffer.capacity();
            slot.set(buffer);
            capacity
        })
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
        assert!(kept() <= KEPT_UP_TO, "the bound the buffer's doc gives");
    }

    #[test]
    fn a_message_that_fails_after_writing_much_leaves_no_large_buffer_behind() {
        let failed = encode(|out| {
            out.resize(10 * KEPT_UP_TO, b' ');
            Err("cannot encode")
        });
        assert_eq!(failed, Err("cannot encode"));
        assert_eq!(kept(), 0, "storage beyond the bound is freed");
        let small = encode::<()>(|out| {
            out.extend_from_slice(b"{}");
            Ok(())
        });
        assert_eq!(small, Ok(b"{}".to_vec()));
        let failed_small = encode(|out| {
            out.extend_from_slice(b"[1,");
            Err("cannot encode")
        });
        assert_eq!(failed_small, Err("cannot encode"));
        assert!(kept() > 0, "a buffer within the bound is kept through a failure");
    }

    #[test]
    fn a_panic_while_encoding_leaves_the_next_message_whole() {
        let panicked = std::panic::catch_unwind(|| {
            encode::<()>(|out| {
                out.extend_from_slice(b"{\"half");
                panic!("a Serialize impl panics");
            })
        });
        assert!(panicked.is_err());
        let next = encode::<()>(|out| {
            out.extend_from_slice(b"[]");
            Ok(())
        });
        assert_eq!(next, Ok(b"[]".to_vec()));
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
