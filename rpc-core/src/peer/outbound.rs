//! The writer: the one place that sends on the connection.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{FutureExt, Sink, SinkExt};
use tokio::sync::watch;

use super::queue::FrameQueue;
use super::shared::Lifecycle;
use super::signal::Signal;
use crate::close::CloseFrame;
use crate::transport::{Outbound, TransportError};

/// How the writer stopped.
#[derive(Debug)]
pub(super) enum WriterEnd {
    /// It sent this close frame, as asked.
    SentClose(CloseFrame),
    /// The transport failed.
    Failed(TransportError),
    /// A write made no progress within this `write_timeout`: the other side does not read.
    Stalled(Duration),
}

/// Runs one write, giving up when it has made no progress for `limit`: when `progress` (bumped by the
/// write as it goes) has not moved over a whole `limit`. A write that completes at once (the socket had
/// room: nearly always) costs no timer.
///
/// The write is pinned by the caller: moved in, it would be stored twice in the connection's future (the
/// argument, and the pinned copy).
async fn timed<T>(
    limit: Option<Duration>,
    progress: &AtomicUsize,
    mut write: Pin<&mut impl Future<Output = Result<T, TransportError>>>,
) -> Result<T, WriterEnd> {
    if let Some(done) = write.as_mut().now_or_never() {
        return done.map_err(WriterEnd::Failed);
    }
    let Some(limit) = limit else {
        return write.await.map_err(WriterEnd::Failed);
    };
    let mut seen = progress.load(Ordering::Relaxed);
    loop {
        match tokio::time::timeout(limit, write.as_mut()).await {
            Ok(done) => return done.map_err(WriterEnd::Failed),
            Err(_) => {
                let now = progress.load(Ordering::Relaxed);
                if now == seen {
                    return Err(WriterEnd::Stalled(limit));
                }
                seen = now;
            }
        }
    }
}

/// How the writer learns that a close was asked for: `asked` is raised, and the close frame is then in
/// `lifecycle` (if not, the wake-up was spurious).
pub(super) struct CloseAsk<'a> {
    pub(super) asked: &'a Signal,
    pub(super) lifecycle: &'a watch::Sender<Lifecycle>,
}

/// Writes queued frames until asked to close, flushing once per burst of frames that were queued together.
///
/// On a close request the frames already queued are sent first, then the close frame.
///
/// The bytes of a burst count against the queue's bound until they are flushed. A frame, a flush or the
/// close not taken by the transport within `write_timeout` ends the writer with [`WriterEnd::Stalled`].
pub(super) async fn write<S>(
    mut sink: S,
    queue: &FrameQueue,
    close: CloseAsk<'_>,
    write_timeout: Option<Duration>,
) -> WriterEnd
where
    S: Sink<Outbound, Error = TransportError> + Unpin,
{
    let mut batch = VecDeque::new();
    loop {
        tokio::select! {
            biased;
            () = close.asked.wait() => {
                let frame = close.lifecycle.borrow().close_request.clone();
                if let Some(frame) = frame {
                    // The ends of a connection are boxed: their states would otherwise count in every
                    // connection's future for its whole life (they are its largest).
                    return Box::pin(async {
                        let progress = AtomicUsize::new(0);
                        let write = std::pin::pin!(close_with(&mut sink, queue, frame));
                        match timed(write_timeout, &progress, write).await {
                            Ok(frame) => WriterEnd::SentClose(frame),
                            Err(end) => end,
                        }
                    })
                    .await;
                }
            }
            taken = queue.take(&mut batch) => {
                if !taken {
                    // The queue is closed: nothing more will be sent, but the connection stays up until the
                    // driver ends it.
                    return futures::future::pending().await;
                }
                if let Err(end) = send_batch(&mut sink, queue, &mut batch, write_timeout).await {
                    return end;
                }
            }
        }
    }
}

/// Writes and flushes `batch`, then gives its bytes back to the queue's bound. The write ends with
/// [`WriterEnd::Stalled`] when no frame of it has been taken by the transport for `write_timeout`: the
/// timer measures a lack of progress, not the time a long burst takes.
async fn send_batch<S>(
    sink: &mut S,
    queue: &FrameQueue,
    batch: &mut VecDeque<Outbound>,
    write_timeout: Option<Duration>,
) -> Result<(), WriterEnd>
where
    S: Sink<Outbound, Error = TransportError> + Unpin,
{
    let progress = AtomicUsize::new(0);
    let mut written = 0;
    {
        let write = std::pin::pin!(async {
            while let Some(frame) = batch.pop_front() {
                written += FrameQueue::cost(&frame);
                sink.feed(frame).await?;
                progress.fetch_add(1, Ordering::Relaxed);
            }
            sink.flush().await
        });
        timed(write_timeout, &progress, write).await?;
    }
    queue.written(written, batch);
    Ok(())
}

/// Sends what is queued now, then the close frame.
async fn close_with<S>(sink: &mut S, queue: &FrameQueue, frame: CloseFrame) -> Result<CloseFrame, TransportError>
where
    S: Sink<Outbound, Error = TransportError> + Unpin,
{
    for queued in queue.take_now() {
        sink.feed(queued).await?;
    }
    sink.send(Outbound::Close(frame.clone())).await?;
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use futures::channel::mpsc as fmpsc;

    use super::*;
    use crate::close::CloseCode;
    use crate::peer::queue::Refused;

    fn sink() -> (
        impl Sink<Outbound, Error = TransportError> + Unpin,
        fmpsc::Receiver<Outbound>,
    ) {
        let (tx, rx) = fmpsc::channel(16);
        (tx.sink_map_err(|_| TransportError::Closed), rx)
    }

    #[tokio::test]
    async fn written_bytes_return_to_the_bound() {
        let (sink, mut written) = sink();
        let queue = FrameQueue::new(8, 10);
        let (lifecycle, asked) = (watch::Sender::new(Lifecycle::default()), Signal::default());
        queue.try_push(Outbound::Frame("12345678".into()), false).unwrap();
        assert!(matches!(
            queue.try_push(Outbound::Frame("1234".into()), false),
            Err(Refused::Full(_))
        ));
        let writer = write(
            sink,
            &queue,
            CloseAsk {
                asked: &asked,
                lifecycle: &lifecycle,
            },
            None,
        );
        let reader = async {
            assert_eq!(written.next().await, Some(Outbound::Frame("12345678".into())));
            // Once flushed, the writer gives the bytes back: a frame of the whole bound fits again.
            queue.push(Outbound::Frame("1234567890".into())).await.unwrap();
        };
        tokio::select! {
            _ = writer => panic!("the writer stopped"),
            () = reader => {}
        }
    }

    #[tokio::test]
    async fn queued_frames_go_out_before_the_close_frame() {
        let (sink, mut written) = sink();
        let queue = FrameQueue::new(8, 100);
        let (lifecycle, asked) = (watch::Sender::new(Lifecycle::default()), Signal::default());
        queue.try_push(Outbound::Frame("a".into()), false).unwrap();
        queue.try_push(Outbound::Frame("b".into()), false).unwrap();
        lifecycle.send_modify(|state| state.close_request = Some(CloseFrame::new(CloseCode::GOING_AWAY, "bye")));
        asked.raise();
        let end = write(
            sink,
            &queue,
            CloseAsk {
                asked: &asked,
                lifecycle: &lifecycle,
            },
            None,
        )
        .await;
        assert!(matches!(end, WriterEnd::SentClose(f) if f.code == CloseCode::GOING_AWAY));
        assert_eq!(written.next().await, Some(Outbound::Frame("a".into())));
        assert_eq!(written.next().await, Some(Outbound::Frame("b".into())));
        assert!(matches!(written.next().await, Some(Outbound::Close(_))));
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_that_makes_no_progress_ends_the_writer_at_its_timeout() {
        // A sink with room for one frame, never read.
        let (tx, _unread) = fmpsc::channel(0);
        let sink = tx.sink_map_err(|_| TransportError::Closed);
        let queue = FrameQueue::new(8, 100);
        let (lifecycle, asked) = (watch::Sender::new(Lifecycle::default()), Signal::default());
        for frame in ["a", "b", "c"] {
            queue.try_push(Outbound::Frame(frame.into()), false).unwrap();
        }
        let started = tokio::time::Instant::now();
        let close = CloseAsk {
            asked: &asked,
            lifecycle: &lifecycle,
        };
        let end = write(sink, &queue, close, Some(std::time::Duration::from_secs(30))).await;
        assert!(
            matches!(end, WriterEnd::Stalled(limit) if limit.as_secs() == 30),
            "{end:?}"
        );
        assert_eq!(started.elapsed(), std::time::Duration::from_secs(30));
    }
}
