//! Per-account request throttling: a token bucket (`rate` requests per second refilling up
//! to `burst`) whose state lives in plugin storage, so every kernel sharing the database
//! sees one bucket per account. A full bucket answers 429 `RequestThrottled`.
//!
//! The state is written with the document's version (optimistic concurrency): two
//! kernels racing for one account's last token cannot both take it.

use serde::{Deserialize, Serialize};
use tessera_sdk::storage::{self, Collection, StorageError};

use crate::errors::{ApiError, ApiResult};

const BUCKETS: Collection = Collection::new("throttle");

/// The bucket's shape, from the `throttle` setting.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Bucket {
    /// Tokens added per second; 0 turns throttling off.
    pub rate: f64,
    /// Most tokens the bucket holds: the longest burst allowed.
    pub burst: f64,
}

impl Default for Bucket {
    fn default() -> Self {
        Bucket {
            rate: 50.0,
            burst: 200.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub tokens: f64,
    pub at_ms: u64,
}

/// Refill since the last request, then take one token: the new state, and on refusal the
/// seconds until a token is back.
pub fn take(bucket: Bucket, state: Option<State>, now_ms: u64) -> (State, Result<(), u64>) {
    let state = state.unwrap_or(State {
        tokens: bucket.burst,
        at_ms: now_ms,
    });
    let elapsed = now_ms.saturating_sub(state.at_ms) as f64 / 1000.0;
    let tokens = (state.tokens + elapsed * bucket.rate).min(bucket.burst);
    if tokens >= 1.0 {
        return (
            State {
                tokens: tokens - 1.0,
                at_ms: now_ms,
            },
            Ok(()),
        );
    }
    let wait = ((1.0 - tokens) / bucket.rate).ceil() as u64;
    (
        State {
            tokens,
            at_ms: now_ms,
        },
        Err(wait.max(1)),
    )
}

/// Take a token for `account_id`, or 429.
pub fn check(account_id: &str, bucket: Bucket, now_ms: u64) -> ApiResult<()> {
    if bucket.rate <= 0.0 {
        return Ok(());
    }
    for _ in 0..4 {
        let stored = BUCKETS.get::<State>(account_id)?;
        let version = stored.as_ref().map_or(0, |s| s.version);
        let (state, verdict) = take(bucket, stored.map(|s| s.value), now_ms);
        match BUCKETS.put(account_id, &state, Some(version)) {
            Ok(_) => return verdict.map_err(ApiError::throttled),
            Err(storage::Error::Storage(StorageError::Conflict(_))) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    // Four lost races in a row: the account is sending faster than the store can count.
    Err(ApiError::throttled(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Bucket = Bucket {
        rate: 2.0,
        burst: 3.0,
    };

    #[test]
    fn a_burst_is_allowed_then_refused_until_tokens_refill() {
        let mut state = None;
        for _ in 0..3 {
            let (next, verdict) = take(B, state, 1000);
            assert_eq!(verdict, Ok(()));
            state = Some(next);
        }
        let (next, verdict) = take(B, state, 1000);
        assert_eq!(verdict, Err(1));
        // Half a second at 2/s brings one token back.
        let (_, verdict) = take(B, Some(next), 1500);
        assert_eq!(verdict, Ok(()));
    }

    #[test]
    fn refills_never_exceed_the_burst() {
        let (state, _) = take(
            B,
            Some(State {
                tokens: 0.0,
                at_ms: 0,
            }),
            1_000_000,
        );
        assert_eq!(state.tokens, 2.0);
    }
}
