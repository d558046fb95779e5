//! Calls a broker failure can interrupt, retried: a stream thread that lost a partition's
//! leader or a connection mid-call forgets the cached metadata, backs off and asks again, up to
//! `task.timeout.ms` (KIP-572), instead of failing the thread (and, by default, the instance).

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::client::Client;
use crate::error::Error;
use crate::streams::error::StreamsError;

/// First pause between attempts; it doubles up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// What to forget before trying again.
pub(crate) trait Forget {
    /// Drop whatever cached routing the failure may have made stale.
    async fn forget(&self);
}

impl Forget for Client {
    /// The cached leaders: the next call looks them up again.
    async fn forget(&self) {
        self.invalidate().await;
    }
}

/// Nothing cached (each attempt connects afresh).
impl Forget for () {
    async fn forget(&self) {}
}

/// Errors another attempt may cure: Kafka's retriable ones, lost connections and timeouts, and
/// a leader the client has no address for (yet).
pub(crate) trait Retriable {
    /// Whether another attempt may succeed.
    fn retriable(&self) -> bool;
}

impl Retriable for Error {
    fn retriable(&self) -> bool {
        self.is_retriable()
            || matches!(
                self,
                Error::Frame(_) | Error::NoBroker(_) | Error::Disconnected(_) | Error::Io { .. } | Error::Timeout(_)
            )
    }
}

impl Retriable for StreamsError {
    fn retriable(&self) -> bool {
        matches!(self, StreamsError::Client(e) if e.retriable())
    }
}

/// Run `call` until it succeeds, fails with an error retrying cannot cure, or `timeout` passed
/// (then the last error). Before each retry `client` forgets its cached leaders.
pub(crate) async fn retrying<T, E, F, Fut>(
    client: &impl Forget,
    timeout: Duration,
    what: &str,
    mut call: F,
) -> Result<T, E>
where
    E: Retriable + std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let deadline = Instant::now() + timeout;
    let mut pause = FIRST_BACKOFF;
    loop {
        let e = match call().await {
            Ok(v) => return Ok(v),
            Err(e) if e.retriable() && Instant::now() + pause < deadline => e,
            Err(e) => return Err(e),
        };
        tracing::warn!(error = %e, "{what} failed; retrying");
        client.forget().await;
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_BACKOFF);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::FrameError;

    #[tokio::test]
    async fn a_lost_connection_is_retried_and_a_fatal_error_is_not() {
        let client = ();
        let mut calls = 0;
        let got = retrying(&client, Duration::from_secs(5), "test", || {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 {
                    Err(Error::Frame(FrameError::Closed))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(got.unwrap(), 3);

        let mut calls = 0;
        let got: Result<(), Error> = retrying(&client, Duration::from_secs(5), "test", || {
            calls += 1;
            async { Err(Error::Config("bad".into())) }
        })
        .await;
        assert!(matches!(got, Err(Error::Config(_))));
        assert_eq!(calls, 1, "a configuration error is not retried");

        let got: Result<(), Error> =
            retrying(&client, Duration::from_millis(120), "test", || async { Err(Error::Frame(FrameError::Closed)) })
                .await;
        assert!(matches!(got, Err(Error::Frame(FrameError::Closed))), "gives up after the timeout with the last error");
    }
}
