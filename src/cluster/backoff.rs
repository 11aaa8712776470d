//! How soon watches retry after the API server stops answering.
//!
//! kube-runtime's default (client-go's) grows to 30 s and only resets after 120 s of
//! success, so after a long outage the caches — and with them the pages and the
//! "unreachable" banner — could lag a returning API server by up to 30 s. One console is a
//! handful of watches: retrying at most every 4 s keeps recovery within a few seconds at
//! a load no API server notices.
use std::time::Duration;

use kube::runtime::utils::Backoff;

const FIRST_RETRY: Duration = Duration::from_millis(500);
const LONGEST_WAIT: Duration = Duration::from_secs(4);

/// Doubling from 0.5 s to at most 4 s; back to 0.5 s once a watch delivers again.
#[derive(Debug, Clone)]
pub struct WatchBackoff {
    next: Duration,
}

impl Default for WatchBackoff {
    fn default() -> Self {
        Self { next: FIRST_RETRY }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let wait = self.next;
        self.next = (self.next * 2).min(LONGEST_WAIT);
        Some(wait)
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = FIRST_RETRY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_grow_to_four_seconds_and_start_over_after_a_reset() {
        let mut backoff = WatchBackoff::default();
        let waits: Vec<u64> = backoff.by_ref().take(7).map(|d| d.as_millis() as u64).collect();
        assert_eq!(waits, [500, 1000, 2000, 4000, 4000, 4000, 4000]);
        backoff.reset();
        assert_eq!(backoff.next(), Some(FIRST_RETRY));
    }
}
