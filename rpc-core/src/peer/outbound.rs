//! The writer: the one place that sends on the connection.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};
use std::time::Duration;

use futures::Sink;
use tokio::time::{Instant, Sleep};

use super::lifecycle::Lifecycle;
use super::queue::FrameQueue;
use super::shared::Shared;
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

/// The writer's state between polls: a plain state machine, not an `async fn`, so that an idle connection's
/// task holds only the batch's storage and a few counters (an `async` writer held the largest state of its
/// awaits, about 660 bytes, for the whole life of every connection). The connection it sends on is lent
/// to each poll: the driver reads from it too.
pub(super) struct Writer {
    /// Frames taken from the queue and not yet handed to the transport.
    batch: VecDeque<Outbound>,
    /// Bytes of the frames taken since the last flush: given back to the queue's bound once flushed.
    taken_bytes: usize,
    step: Step,
    /// The close frame to send after the batch, once a close was asked for.
    closing: Option<CloseFrame>,
    /// Frames handed to the transport so far, the stall timer's measure of progress.
    progress: u64,
    /// While the transport makes the writer wait: the stall timer, and the progress when it was last set.
    /// Made only when a write does not complete at once (the socket had room: nearly always).
    stall: Option<(Pin<Box<Sleep>>, u64)>,
    write_timeout: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Waiting for frames, or for a close request.
    Idle,
    /// Handing the batch to the transport.
    Sending,
    /// Flushing what was handed over.
    Flushing,
    /// The queue is closed: nothing more will be sent, but the connection stays up until the driver ends
    /// it.
    Parked,
    /// The close frame went out, the transport failed, or it stalled.
    Ended,
}

impl Writer {
    /// A writer. When the transport makes it wait and no frame has been taken for a whole `write_timeout`
    /// (`None`: no limit), it ends with [`WriterEnd::Stalled`].
    pub(super) fn new(write_timeout: Option<Duration>) -> Self {
        Self {
            batch: VecDeque::new(),
            taken_bytes: 0,
            step: Step::Idle,
            closing: None,
            progress: 0,
            stall: None,
            write_timeout,
        }
    }

    /// Writes queued frames until asked to close, flushing once per burst of frames that were queued
    /// together; ready with how it ended. On a close request the frames already queued are sent first,
    /// then the close frame.
    ///
    /// The bytes of a burst count against the queue's bound until they are flushed. The stall timer
    /// measures a lack of progress (no frame taken by the transport for `write_timeout`), not the time a
    /// long burst takes. Polled again after it ended, it stays pending. `busy`: the connection is in
    /// steady use, so that a burst of one frame keeps the storage it used (see [`FrameQueue::written`]).
    /// The transport is polled with `sink_waker` (the driver's: see `reads.rs`), the stall timer with
    /// `cx`'s; the queue and the close request are looked at through the connection's signal, on which the
    /// caller registered `cx`'s waker in this poll (see [`Signal::register`]).
    pub(super) fn poll_write<S>(
        &mut self,
        cx: &mut Context<'_>,
        sink_waker: &Waker,
        sink: &mut S,
        from: Source<'_>,
        busy: bool,
    ) -> Poll<WriterEnd>
    where
        S: Sink<Outbound, Error = TransportError> + Unpin,
    {
        loop {
            match self.step {
                Step::Idle => {
                    // A close request goes first: what is queued then is sent before the close frame.
                    if from.lifecycle.poll_close_asked(from.wake).is_ready()
                        && let Some(frame) = from.lifecycle.close_request()
                    {
                        self.batch.extend(from.queue.take_now());
                        self.batch.push_back(Outbound::Close(frame.clone()));
                        self.closing = Some(frame);
                        self.step = Step::Sending;
                        continue;
                    }
                    match from.queue.poll_take(&mut self.batch, from.wake) {
                        Poll::Ready(true) => self.step = Step::Sending,
                        Poll::Ready(false) => self.step = Step::Parked,
                        Poll::Pending => return Poll::Pending,
                    }
                }
                Step::Sending => {
                    while !self.batch.is_empty() {
                        match Pin::new(&mut *sink).poll_ready(&mut Context::from_waker(sink_waker)) {
                            Poll::Ready(Ok(())) => {}
                            Poll::Ready(Err(e)) => return self.end(WriterEnd::Failed(e)),
                            Poll::Pending => return self.wait(cx),
                        }
                        let Some(frame) = self.batch.pop_front() else { break };
                        self.taken_bytes += FrameQueue::cost(&frame);
                        if let Err(e) = Pin::new(&mut *sink).start_send(frame) {
                            return self.end(WriterEnd::Failed(e));
                        }
                        self.progress += 1;
                    }
                    self.step = Step::Flushing;
                }
                Step::Flushing => match Pin::new(&mut *sink).poll_flush(&mut Context::from_waker(sink_waker)) {
                    Poll::Ready(Ok(())) => {
                        self.stall = None;
                        from.queue
                            .written(std::mem::take(&mut self.taken_bytes), &mut self.batch, busy);
                        if let Some(frame) = self.closing.take() {
                            return self.end(WriterEnd::SentClose(frame));
                        }
                        self.step = Step::Idle;
                    }
                    Poll::Ready(Err(e)) => return self.end(WriterEnd::Failed(e)),
                    Poll::Pending => return self.wait(cx),
                },
                Step::Parked | Step::Ended => return Poll::Pending,
            }
        }
    }

    /// Whether polling the writer now could do anything more than the last poll that left it waiting for
    /// frames: it is sending or flushing, or a frame was queued or a close asked for since (their flags on
    /// the connection's signal, looked at without taking them). While it waits for frames and neither came,
    /// the task is woken by their raise, its waker being registered on the signal. Only meaningful after a
    /// poll of the writer.
    pub(super) fn has_work(&self, from: Source<'_>) -> bool {
        match self.step {
            Step::Idle => from.queue.may_have_frames(from.wake) || from.lifecycle.close_may_be_asked(from.wake),
            Step::Sending | Step::Flushing => true,
            Step::Parked | Step::Ended => false,
        }
    }

    /// Frames handed to the transport so far.
    pub(super) fn progress(&self) -> u64 {
        self.progress
    }

    /// Whether the writer keeps storage for frames between bursts (see [`FrameQueue::written`]).
    pub(super) fn keeps_storage(&self) -> bool {
        self.batch.capacity() > 0
    }

    /// Gives back the storage kept between bursts, the writer's and the queue's, unless frames are in
    /// them.
    pub(super) fn give_back_storage(&mut self, queue: &FrameQueue) {
        queue.give_back_storage(&mut self.batch);
    }

    fn end(&mut self, end: WriterEnd) -> Poll<WriterEnd> {
        self.step = Step::Ended;
        self.stall = None;
        Poll::Ready(end)
    }

    /// The transport made the writer wait: pending, unless it has made no progress for a whole
    /// `write_timeout`.
    fn wait(&mut self, cx: &mut Context<'_>) -> Poll<WriterEnd> {
        let Some(limit) = self.write_timeout else {
            return Poll::Pending;
        };
        let progress = self.progress;
        let (timer, seen) = self
            .stall
            .get_or_insert_with(|| (Box::pin(tokio::time::sleep(limit)), progress));
        loop {
            ready!(timer.as_mut().poll(cx));
            if *seen == progress {
                return self.end(WriterEnd::Stalled(limit));
            }
            *seen = progress;
            timer.as_mut().reset(Instant::now() + limit);
        }
    }
}

/// Where the writer takes its work from: the connection's queue of frames and its lifecycle (the close
/// request), both of which wake the writer's task through the connection's signal.
#[derive(Clone, Copy)]
pub(super) struct Source<'a> {
    pub(super) queue: &'a FrameQueue,
    pub(super) lifecycle: &'a Lifecycle,
    pub(super) wake: &'a Signal,
}

impl<'a> Source<'a> {
    /// The connection's own.
    pub(super) fn of(shared: &'a Shared) -> Self {
        Self {
            queue: &shared.queue,
            lifecycle: &shared.lifecycle,
            wake: &shared.wake,
        }
    }
}

/// [`Writer::poll_write`] as a future, for the tests.
#[cfg(test)]
async fn write<S>(mut sink: S, from: Source<'_>, write_timeout: Option<Duration>) -> WriterEnd
where
    S: Sink<Outbound, Error = TransportError> + Unpin,
{
    let mut writer = Writer::new(write_timeout);
    std::future::poll_fn(|cx| {
        from.wake.register(cx);
        let waker = cx.waker().clone();
        writer.poll_write(cx, &waker, &mut sink, from, false)
    })
    .await
}

#[cfg(test)]
mod tests {
    use futures::channel::mpsc as fmpsc;
    use futures::{SinkExt, StreamExt};

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
        let lifecycle = Lifecycle::default();
        let wake = Signal::default();
        let from = Source {
            queue: &queue,
            lifecycle: &lifecycle,
            wake: &wake,
        };
        queue
            .try_push(Outbound::Frame("12345678".into()), false, &wake)
            .unwrap();
        assert!(matches!(
            queue.try_push(Outbound::Frame("1234".into()), false, &wake),
            Err(Refused::Full(_))
        ));
        let writer = write(sink, from, None);
        let reader = async {
            assert_eq!(written.next().await, Some(Outbound::Frame("12345678".into())));
            // Once flushed, the writer gives the bytes back: a frame of the whole bound fits again.
            queue.push(Outbound::Frame("1234567890".into()), &wake).await.unwrap();
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
        let lifecycle = Lifecycle::default();
        let wake = Signal::default();
        let from = Source {
            queue: &queue,
            lifecycle: &lifecycle,
            wake: &wake,
        };
        queue.try_push(Outbound::Frame("a".into()), false, &wake).unwrap();
        queue.try_push(Outbound::Frame("b".into()), false, &wake).unwrap();
        lifecycle.request_close(CloseFrame::new(CloseCode::GOING_AWAY, "bye"), &wake);
        let end = write(sink, from, None).await;
        assert!(matches!(end, WriterEnd::SentClose(f) if f.code == CloseCode::GOING_AWAY));
        assert_eq!(written.next().await, Some(Outbound::Frame("a".into())));
        assert_eq!(written.next().await, Some(Outbound::Frame("b".into())));
        assert!(matches!(written.next().await, Some(Outbound::Close(_))));
    }

    #[test]
    fn a_writer_waiting_for_frames_has_work_once_a_frame_is_queued_or_a_close_asked_for() {
        let (mut sink, mut written) = sink();
        let queue = FrameQueue::new(8, 100);
        let lifecycle = Lifecycle::default();
        let wake = Signal::default();
        let from = Source {
            queue: &queue,
            lifecycle: &lifecycle,
            wake: &wake,
        };
        let mut writer = Writer::new(None);
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(writer.poll_write(&mut cx, &waker, &mut sink, from, false).is_pending());
        assert!(!writer.has_work(from), "waiting, and nothing came");
        // Queued by the writer's own task (no wake-up) and by another (a wake-up): seen either way.
        for here in [true, false] {
            let frame = Outbound::Frame("a".into());
            if here {
                queue.try_push_here(frame, false, &wake).unwrap();
            } else {
                queue.try_push(frame, false, &wake).unwrap();
            }
            assert!(writer.has_work(from));
            assert!(writer.poll_write(&mut cx, &waker, &mut sink, from, false).is_pending());
            assert_eq!(written.try_recv().ok(), Some(Outbound::Frame("a".into())));
            assert!(!writer.has_work(from));
        }
        lifecycle.request_close(CloseFrame::new(CloseCode::GOING_AWAY, "bye"), &wake);
        assert!(writer.has_work(from));
        assert!(matches!(
            writer.poll_write(&mut cx, &waker, &mut sink, from, false),
            Poll::Ready(WriterEnd::SentClose(_))
        ));
        assert!(!writer.has_work(from), "ended");
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_that_makes_no_progress_ends_the_writer_at_its_timeout() {
        // A sink with room for one frame, never read.
        let (tx, _unread) = fmpsc::channel(0);
        let sink = tx.sink_map_err(|_| TransportError::Closed);
        let queue = FrameQueue::new(8, 100);
        let lifecycle = Lifecycle::default();
        let wake = Signal::default();
        let from = Source {
            queue: &queue,
            lifecycle: &lifecycle,
            wake: &wake,
        };
        for frame in ["a", "b", "c"] {
            queue.try_push(Outbound::Frame(frame.into()), false, &wake).unwrap();
        }
        let started = tokio::time::Instant::now();
        let end = write(sink, from, Some(std::time::Duration::from_secs(30))).await;
        assert!(
            matches!(end, WriterEnd::Stalled(limit) if limit.as_secs() == 30),
            "{end:?}"
        );
        assert_eq!(started.elapsed(), std::time::Duration::from_secs(30));
    }
}
