//! A short-lived lock per team, held while a quota is checked and the
//! resource that uses it is made, so concurrent requests cannot pass a quota
//! together. It is a storage document: `insert` fails while another request
//! holds it; a lock older than `STALE_MS` (its holder trapped) is taken over.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tessera_sdk::storage::{self, Collection, StorageError};

use crate::errors::{ApiError, ApiResult};
use crate::model::now_millis;

const LOCKS: Collection = Collection::new("locks");
/// Longer than any request may run (the mount's time budget).
const STALE_MS: u64 = 30_000;
/// How long a request waits for the lock before giving up.
const WAIT: Duration = Duration::from_secs(2);

/// Held until dropped.
pub struct TeamLock {
    key: String,
}

impl TeamLock {
    pub fn acquire(team: &str) -> ApiResult<TeamLock> {
        let key = format!("team:{team}");
        let deadline = Instant::now() + WAIT;
        loop {
            match LOCKS.insert(&key, &json!({ "at": now_millis() })) {
                Ok(_) => return Ok(TeamLock { key }),
                Err(storage::Error::Storage(StorageError::AlreadyExists)) => {}
                Err(e) => return Err(e.into()),
            }
            if let Some(held) = LOCKS.get::<Value>(&key)? {
                let at = held.value["at"].as_u64().unwrap_or(0);
                if now_millis().saturating_sub(at) > STALE_MS {
                    // Whoever deletes the stale version first wins; retry either way.
                    let _ = LOCKS.delete(&key, Some(held.version));
                    continue;
                }
            }
            if Instant::now() >= deadline {
                return Err(ApiError::new(
                    409,
                    "Busy",
                    "another request is using this team's quotas; retry",
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for TeamLock {
    fn drop(&mut self) {
        if let Err(e) = LOCKS.delete(&self.key, None) {
            tessera_sdk::error!("releasing {} failed: {e}", self.key);
        }
    }
}
