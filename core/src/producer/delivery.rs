//! Delivery reports: one shared completion per batch, one small future per record.
//!
//! A batch's records all succeed or fail together, so the outcome lives once per batch in a
//! [`BatchCompletion`] (allocated when the batch is created). A record's [`DeliveryFuture`] is a
//! reference to it plus the record's index: no allocation per record.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crate::error::{Error, Result};

/// Where a record was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Topic (shared by every record of the batch).
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset in the partition; -1 with `acks=0`, where the broker does not answer.
    pub offset: i64,
    /// The record's timestamp as sent (its own, or the time of `send`). With a topic on
    /// `message.timestamp.type=LogAppendTime` the stored timestamp is the broker's instead.
    pub timestamp: i64,
}

#[derive(Debug, Default)]
struct State {
    /// `Ok(base offset)` or the batch's error.
    outcome: Option<Result<i64>>,
    wakers: Vec<Waker>,
}

/// The outcome of one batch, shared by the futures of its records.
#[derive(Debug)]
pub(crate) struct BatchCompletion {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    state: Mutex<State>,
}

impl BatchCompletion {
    pub(crate) fn new(topic: Arc<str>, partition: i32) -> Arc<Self> {
        Arc::new(Self { topic, partition, state: Mutex::new(State::default()) })
    }

    /// Set the outcome (first call wins) and wake every waiting future.
    pub(crate) fn complete(&self, outcome: Result<i64>) {
        let wakers = {
            let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if s.outcome.is_some() {
                return;
            }
            s.outcome = Some(outcome);
            std::mem::take(&mut s.wakers)
        };
        for w in wakers {
            w.wake();
        }
    }

    pub(crate) fn is_complete(&self) -> bool {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).outcome.is_some()
    }

    /// Poll for the outcome; `slot` remembers where this poller's waker is kept.
    fn poll_outcome<T>(
        &self,
        cx: &mut Context<'_>,
        slot: &mut Option<usize>,
        map: impl FnOnce(&Result<i64>) -> T,
    ) -> Poll<T> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(outcome) = &s.outcome {
            return Poll::Ready(map(outcome));
        }
        match slot {
            Some(i) if s.wakers.get(*i).is_some() => {
                if !s.wakers[*i].will_wake(cx.waker()) {
                    s.wakers[*i] = cx.waker().clone();
                }
            }
            _ => {
                *slot = Some(s.wakers.len());
                s.wakers.push(cx.waker().clone());
            }
        }
        Poll::Pending
    }

    /// Wait until the batch is complete (for `flush`).
    pub(crate) fn wait(self: &Arc<Self>) -> impl Future<Output = ()> + '_ {
        let mut slot = None;
        std::future::poll_fn(move |cx| self.poll_outcome(cx, &mut slot, |_| ()))
    }
}

/// The delivery report of one record: resolves once the broker acknowledged the record's batch,
/// or once it failed for good (a non-retriable error, `retries` used up, or
/// `delivery.timeout.ms` passed). Dropping it does not cancel the send.
#[derive(Debug)]
#[must_use = "a DeliveryFuture reports whether the record was stored; await it or drop it knowingly"]
pub struct DeliveryFuture {
    batch: Arc<BatchCompletion>,
    index: i32,
    timestamp: i64,
    slot: Option<usize>,
}

impl DeliveryFuture {
    pub(crate) fn new(batch: Arc<BatchCompletion>, index: i32, timestamp: i64) -> Self {
        Self { batch, index, timestamp, slot: None }
    }

    /// The partition the record was placed in (known as soon as `send` returns).
    pub fn partition(&self) -> i32 {
        self.batch.partition
    }
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let (index, timestamp, batch) = (this.index, this.timestamp, &this.batch);
        batch.poll_outcome(cx, &mut this.slot, |outcome| match outcome {
            Ok(base) => Ok(RecordMetadata {
                topic: batch.topic.clone(),
                partition: batch.partition,
                offset: if *base < 0 { -1 } else { base + index as i64 },
                timestamp,
            }),
            Err(e) => Err(duplicate(e)),
        })
    }
}

/// A copy of `e` for each record of a failed batch ([`Error`] is not `Clone`: it can hold an
/// `io::Error`, which is rebuilt from its kind and message).
pub(crate) fn duplicate(e: &Error) -> Error {
    let io = |c: &std::io::Error| std::io::Error::new(c.kind(), c.to_string());
    match e {
        Error::Io { addr, cause } => Error::Io { addr: addr.clone(), cause: io(cause) },
        Error::Frame(f) => Error::Frame(match f {
            crate::wire::FrameError::Closed => crate::wire::FrameError::Closed,
            crate::wire::FrameError::Io(c) => crate::wire::FrameError::Io(io(c)),
            crate::wire::FrameError::TooLarge { claimed, max } => {
                crate::wire::FrameError::TooLarge { claimed: *claimed, max: *max }
            }
        }),
        Error::Protocol(m) => Error::Protocol(m.clone()),
        Error::Broker { code, name, what, message } => {
            Error::Broker { code: *code, name: name.clone(), what: what.clone(), message: message.clone() }
        }
        Error::UnsupportedVersion { addr, api, min, max } => {
            Error::UnsupportedVersion { addr: addr.clone(), api: api.clone(), min: *min, max: *max }
        }
        Error::Disconnected(a) => Error::Disconnected(a.clone()),
        Error::Config(m) => Error::Config(m.clone()),
        Error::NoBroker(m) => Error::NoBroker(m.clone()),
        Error::Timeout(m) => Error::Timeout(m.clone()),
        Error::GroupActive(g) => Error::GroupActive(g.clone()),
        Error::ProducerFenced(m) => Error::ProducerFenced(m.clone()),
        Error::TransactionAbortable(e) => Error::TransactionAbortable(Box::new(duplicate(e))),
        Error::ProducerFatal(e) => Error::ProducerFatal(Box::new(duplicate(e))),
        Error::IllegalState(m) => Error::IllegalState(m.clone()),
        Error::TransactionAborted(m) => Error::TransactionAborted(m.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_record_of_a_batch_gets_its_offset_or_the_error() {
        let ok = BatchCompletion::new("t".into(), 3);
        let futs: Vec<DeliveryFuture> = (0..3).map(|i| DeliveryFuture::new(ok.clone(), i, 100 + i as i64)).collect();
        assert_eq!(futs[1].partition(), 3);
        let waiter = tokio::spawn(async move {
            let mut out = Vec::new();
            for f in futs {
                out.push(f.await.unwrap());
            }
            out
        });
        tokio::task::yield_now().await;
        ok.complete(Ok(40));
        ok.complete(Ok(99)); // ignored: the first outcome stands
        let got = waiter.await.unwrap();
        assert_eq!(got.iter().map(|m| (m.offset, m.timestamp)).collect::<Vec<_>>(), [(40, 100), (41, 101), (42, 102)]);
        assert_eq!(&*got[0].topic, "t");

        let failed = BatchCompletion::new("t".into(), 0);
        let f = DeliveryFuture::new(failed.clone(), 1, 0);
        failed.complete(Err(Error::from_code(10, "t-0", Some("too big".into())).unwrap()));
        let e = f.await.unwrap_err();
        assert_eq!(e.code(), Some(10));
        assert!(e.to_string().contains("too big"), "{e}");

        let acks0 = BatchCompletion::new("t".into(), 0);
        acks0.complete(Ok(-1));
        assert_eq!(DeliveryFuture::new(acks0, 5, 0).await.unwrap().offset, -1);
    }
}
