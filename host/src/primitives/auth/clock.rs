//! Where the auth primitive reads the time: the system clock, or a hand-set one for tests.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The current time in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> u64;
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        // A clock before 1970 reads as the epoch rather than failing every check.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, duration_ms)
    }
}

/// The system clock plus a signed offset in milliseconds read from a file at
/// every call (absent or unreadable: no offset). It lets an end-to-end test, which
/// talks to a separate kernel process, age tokens without sleeping; the site
/// config names the file (`auth.clock_offset_file`), which real sites never set.
#[derive(Debug, Clone)]
pub struct OffsetFileClock {
    path: PathBuf,
}

impl OffsetFileClock {
    pub fn new(path: PathBuf) -> Self {
        OffsetFileClock { path }
    }
}

impl Clock for OffsetFileClock {
    fn now_ms(&self) -> u64 {
        let offset = std::fs::read_to_string(&self.path)
            .ok()
            .and_then(|text| text.trim().parse::<i64>().ok())
            .unwrap_or(0);
        SystemClock.now_ms().saturating_add_signed(offset)
    }
}

/// A clock that moves only when told, so tests of expiry and throttling never sleep.
#[derive(Debug, Default)]
pub struct ManualClock {
    now_ms: AtomicU64,
}

impl ManualClock {
    pub fn new(start_ms: u64) -> Self {
        ManualClock {
            now_ms: AtomicU64::new(start_ms),
        }
    }

    pub fn advance(&self, by: Duration) {
        self.now_ms.fetch_add(duration_ms(by), Ordering::SeqCst);
    }

    pub fn set(&self, now_ms: u64) {
        self.now_ms.store(now_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
