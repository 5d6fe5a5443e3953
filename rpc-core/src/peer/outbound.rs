//! The writer: the one place that sends on the connection.

use futures::{Sink, SinkExt};
use tokio::sync::{mpsc, watch};

use super::shared::Shared;
use crate::close::CloseFrame;
use crate::transport::{Outbound, TransportError};

/// The most frames written between two flushes.
const BURST: usize = 64;

/// How the writer stopped.
#[derive(Debug)]
pub(super) enum WriterEnd {
    /// It sent this close frame, as asked.
    SentClose(CloseFrame),
    /// The transport failed.
    Failed(TransportError),
}

/// Writes queued frames until asked to close, flushing once per burst of frames that were ready together.
///
/// On a close request the frames already queued are sent first, then the close frame.
///
/// The bytes of the frames of a burst are given back to the queue's byte budget once they are flushed.
pub(super) async fn write<S>(
    mut sink: S,
    queue: &mut mpsc::Receiver<Outbound>,
    mut close_request: watch::Receiver<Option<CloseFrame>>,
    shared: &Shared,
) -> WriterEnd
where
    S: Sink<Outbound, Error = TransportError> + Unpin,
{
    let mut burst = Vec::with_capacity(BURST);
    loop {
        tokio::select! {
            biased;
            changed = close_request.changed() => {
                let frame = close_request.borrow_and_update().clone();
                match (changed, frame) {
                    (Ok(()), Some(frame)) => return close(&mut sink, queue, frame).await,
                    // Nobody can ask any more (the peer is going away); go on with the queue.
                    (Err(_), _) => return drain_then_idle(&mut sink, queue).await,
                    (Ok(()), None) => {}
                }
            }
            count = queue.recv_many(&mut burst, BURST) => {
                if count == 0 {
                    // Every sender is gone: nothing more will be sent, but the connection stays up until the
                    // driver ends it.
                    return futures::future::pending().await;
                }
                let mut written: usize = 0;
                for frame in burst.drain(..) {
                    if let Outbound::Frame(text) = &frame {
                        written += shared.cost(text.len()) as usize;
                    }
                    if let Err(e) = sink.feed(frame).await {
                        return WriterEnd::Failed(e);
                    }
                }
                if let Err(e) = sink.flush().await {
                    return WriterEnd::Failed(e);
                }
                shared.queued_bytes.add_permits(written);
            }
        }
    }
}

/// Sends what is queued now, then the close frame.
async fn close<S>(sink: &mut S, queue: &mut mpsc::Receiver<Outbound>, frame: CloseFrame) -> WriterEnd
where
    S: Sink<Outbound, Error = TransportError> + Unpin,
{
    for _ in 0..queue.len() {
        let Ok(queued) = queue.try_recv() else { break };
        if let Err(e) = sink.feed(queued).await {
            return WriterEnd::Failed(e);
        }
    }
    match sink.send(Outbound::Close(frame.clone())).await {
        Ok(()) => WriterEnd::SentClose(frame),
        Err(e) => WriterEnd::Failed(e),
    }
}

/// Keeps writing without watching for close requests.
async fn drain_then_idle<S>(sink: &mut S, queue: &mut mpsc::Receiver<Outbound>) -> WriterEnd
where
    S: Sink<Outbound, Error = TransportError> + Unpin,
{
    while let Some(frame) = queue.recv().await {
        if let Err(e) = sink.send(frame).await {
            return WriterEnd::Failed(e);
        }
    }
    futures::future::pending().await
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use futures::channel::mpsc as fmpsc;

    use super::*;
    use crate::close::CloseCode;

    fn sink() -> (
        impl Sink<Outbound, Error = TransportError> + Unpin,
        fmpsc::Receiver<Outbound>,
    ) {
        let (tx, rx) = fmpsc::channel(16);
        (tx.sink_map_err(|_| TransportError::Closed), rx)
    }

    #[tokio::test]
    async fn written_bytes_return_to_the_budget() {
        let (sink, mut written) = sink();
        let (tx, mut rx) = mpsc::channel(8);
        let shared = Shared::new(
            crate::PeerConfig::default().max_queued_bytes(10),
            tx,
            Default::default(),
            Default::default(),
        );
        let (_close_tx, close_rx) = watch::channel(None);
        shared.send("12345678".into()).await.unwrap();
        assert!(matches!(
            shared.try_send("1234".into()),
            Err(super::super::shared::Refused::Full(_))
        ));
        let writer = write(sink, &mut rx, close_rx, &shared);
        let reader = async {
            assert_eq!(written.next().await, Some(Outbound::Frame("12345678".into())));
            // Once flushed, the writer gives the bytes back: the whole budget is free again.
            shared.queued_bytes.acquire_many(10).await.unwrap().forget();
        };
        tokio::select! {
            _ = writer => panic!("the writer stopped"),
            () = reader => {}
        }
    }

    #[tokio::test]
    async fn queued_frames_go_out_before_the_close_frame() {
        let (sink, mut written) = sink();
        let (tx, mut rx) = mpsc::channel(8);
        let shared = Shared::new(
            crate::PeerConfig::default(),
            tx.clone(),
            Default::default(),
            Default::default(),
        );
        let (close_tx, close_rx) = watch::channel(None);
        tx.send(Outbound::Frame("a".into())).await.unwrap();
        tx.send(Outbound::Frame("b".into())).await.unwrap();
        close_tx.send_replace(Some(CloseFrame::new(CloseCode::GOING_AWAY, "bye")));
        let end = write(sink, &mut rx, close_rx, &shared).await;
        assert!(matches!(end, WriterEnd::SentClose(f) if f.code == CloseCode::GOING_AWAY));
        assert_eq!(written.next().await, Some(Outbound::Frame("a".into())));
        assert_eq!(written.next().await, Some(Outbound::Frame("b".into())));
        assert!(matches!(written.next().await, Some(Outbound::Close(_))));
    }
}
