//! Answers kept while the log is unchanged: the history page is viewed far more often than
//! the log is written, and each read is a round trip to SQLite's thread (issue 15 §3).
//! A kept answer is used again only while this process has committed nothing since it
//! was read, and for at most [`TRUSTED_FOR`]: a write from elsewhere (another process on
//! the same file, someone with `sqlite3`) shows within that.
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub(super) const TRUSTED_FOR: Duration = Duration::from_secs(1);

/// More distinct questions than this (filters, pages) and the kept answers start afresh.
const MAX_KEPT: usize = 256;

/// Counts this process's commits to the log (appends, resolutions, archiving).
#[derive(Clone, Default)]
pub(super) struct Revision(Arc<AtomicU64>);

impl Revision {
    pub(super) fn bump(&self) {
        self.0.fetch_add(1, Ordering::Release);
    }

    pub(super) fn current(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// A value and when it was read.
struct Reading<V> {
    revision: u64,
    at: Instant,
    value: V,
}

/// Answers by question, each valid for the revision it was read at.
pub(super) struct Kept<K, V> {
    readings: Mutex<HashMap<K, Reading<V>>>,
}

impl<K, V> Default for Kept<K, V> {
    fn default() -> Self {
        Self { readings: Mutex::new(HashMap::new()) }
    }
}

impl<K: Hash + Eq, V: Clone> Kept<K, V> {
    /// The answer to `key` read at `revision`, if it is still trusted.
    pub(super) fn get(&self, key: &K, revision: u64) -> Option<V> {
        let readings = self.readings.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let reading = readings.get(key)?;
        (reading.revision == revision && reading.at.elapsed() < TRUSTED_FOR).then(|| reading.value.clone())
    }

    pub(super) fn clear(&self) {
        self.readings.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clear();
    }

    /// Keeps `value`, read at `revision` (taken before the read, so the value is never
    /// older than the revision it is kept under).
    pub(super) fn keep(&self, key: K, revision: u64, value: V) {
        let mut readings = self.readings.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if readings.len() >= MAX_KEPT {
            readings.retain(|_, reading| reading.revision == revision);
            if readings.len() >= MAX_KEPT {
                readings.clear();
            }
        }
        readings.insert(key, Reading { revision, at: Instant::now(), value });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_kept_until_the_revision_moves() {
        let revision = Revision::default();
        let kept = Kept::<&str, u32>::default();
        kept.keep("page", revision.current(), 7);
        assert_eq!(kept.get(&"page", revision.current()), Some(7));
        assert_eq!(kept.get(&"other", revision.current()), None);
        revision.bump();
        assert_eq!(kept.get(&"page", revision.current()), None, "a commit makes it stale");
    }

    #[test]
    fn an_answer_is_trusted_for_a_second_at_most() {
        let kept = Kept::<&str, u32>::default();
        kept.keep("page", 0, 7);
        kept.readings.lock().unwrap().get_mut("page").unwrap().at -= TRUSTED_FOR;
        assert_eq!(kept.get(&"page", 0), None, "writes from other processes show within TRUSTED_FOR");
    }

    #[test]
    fn too_many_questions_start_afresh_keeping_current_answers() {
        let kept = Kept::<usize, usize>::default();
        for key in 0..MAX_KEPT {
            kept.keep(key, 0, key);
        }
        kept.keep(MAX_KEPT, 1, MAX_KEPT);
        assert_eq!(kept.get(&MAX_KEPT, 1), Some(MAX_KEPT));
        assert_eq!(kept.get(&0, 0), None, "answers of an older revision went first");
        assert!(kept.readings.lock().unwrap().len() <= MAX_KEPT);
    }
}
