//! signalbox's own writes, so that watchers do not mistake their echo for outside changes.
//!
//! A write's watch event can arrive before the write's response (which carries the version
//! the write produced), and on a busy machine well after any fixed grace: an object being
//! written is therefore judged only once its write has answered ([`OwnWrites::settled`]).
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::{ObjectRef, Operation};

/// How long an object counts as written by signalbox after a write.
const OWN_WRITE_WINDOW: Duration = Duration::from_secs(30);
/// How often [`OwnWrites::settled`] looks again.
const SETTLE_POLL: Duration = Duration::from_millis(20);

#[derive(Clone, Default)]
pub struct OwnWrites {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    recent: HashMap<ObjectRef, RecentWrite>,
    /// Writes sent and not yet answered, by object.
    writing: HashMap<ObjectRef, usize>,
}

/// When signalbox last wrote an object, and the resourceVersions its writes produced.
struct RecentWrite {
    at: Instant,
    versions: Vec<String>,
    /// The last write was a deletion.
    deleted: bool,
}

/// A write in flight; dropping it (after [`OwnWrites::note`]) ends it.
pub struct Writing {
    writes: OwnWrites,
    target: ObjectRef,
}

impl Drop for Writing {
    fn drop(&mut self) {
        let mut state = self.writes.lock();
        if let Some(count) = state.writing.get_mut(&self.target) {
            *count -= 1;
            if *count == 0 {
                state.writing.remove(&self.target);
            }
        }
    }
}

impl OwnWrites {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A write to `target` is about to be sent.
    pub fn begin(&self, target: &ObjectRef) -> Writing {
        *self.lock().writing.entry(target.clone()).or_default() += 1;
        Writing { writes: self.clone(), target: target.clone() }
    }

    /// The write answered with `result` (the object it left, if any).
    pub fn note(&self, operation: &Operation, result: Option<&Value>) {
        let mut state = self.lock();
        state.recent.retain(|_, write| write.at.elapsed() < OWN_WRITE_WINDOW);
        let now = Instant::now();
        let write = state.recent.entry(operation.target().clone()).or_insert(RecentWrite {
            at: now,
            versions: Vec::new(),
            deleted: false,
        });
        write.at = now;
        write.deleted = matches!(operation, Operation::Delete { .. });
        if let Some(version) = result.and_then(|o| o["metadata"]["resourceVersion"].as_str()) {
            write.versions.push(version.to_owned());
        }
    }

    /// Waits (at most the own-write window) until no write to `target` is in flight.
    pub async fn settled(&self, target: &ObjectRef) {
        let deadline = Instant::now() + OWN_WRITE_WINDOW;
        while self.lock().writing.contains_key(target) && Instant::now() < deadline {
            tokio::time::sleep(SETTLE_POLL).await;
        }
    }

    /// signalbox's writes in `namespace` within the own-write window, each with the version
    /// it left (None: deleted); None when a write there is still in flight.
    pub fn recent_in(&self, namespace: &str) -> Option<Vec<(ObjectRef, Option<String>)>> {
        let state = self.lock();
        let here = |target: &ObjectRef| target.namespace.as_deref() == Some(namespace);
        if state.writing.keys().any(here) {
            return None;
        }
        let recent =
            state.recent.iter().filter(|(target, write)| here(target) && write.at.elapsed() < OWN_WRITE_WINDOW);
        Some(
            recent
                .map(|(target, write)| {
                    let version = if write.deleted { None } else { write.versions.last().cloned() };
                    (target.clone(), version)
                })
                .collect(),
        )
    }

    /// Whether a change to `target` seen by a watch was signalbox's own: the version its
    /// write produced, or (for a deletion, which has no version) its own deletion lately.
    pub fn wrote(&self, target: &ObjectRef, resource_version: Option<&str>) -> bool {
        self.lock().recent.get(target).is_some_and(|write| match resource_version {
            Some(version) => write.versions.iter().any(|v| v == version),
            None => write.deleted && write.at.elapsed() < OWN_WRITE_WINDOW,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::Kind;

    #[tokio::test]
    async fn an_echo_is_judged_once_its_write_has_answered() {
        let writes = OwnWrites::default();
        let target = ObjectRef::namespaced(Kind::VirtualService, "tutorial", "recommendation");
        let writing = writes.begin(&target);
        assert!(!writes.wrote(&target, Some("7")), "the version is not known before the answer");
        let answer = {
            let writes = writes.clone();
            let target = target.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let operation = Operation::Delete { target };
                writes.note(&operation, Some(&serde_json::json!({"metadata": {"resourceVersion": "7"}})));
                drop(writing);
            })
        };
        writes.settled(&target).await;
        assert!(writes.wrote(&target, Some("7")), "settled only after the write answered");
        assert!(!writes.wrote(&target, Some("8")));
        answer.await.unwrap();
    }

    #[test]
    fn recent_writes_of_a_namespace_name_the_version_each_left_and_none_while_one_is_in_flight() {
        let writes = OwnWrites::default();
        let vs = ObjectRef::namespaced(Kind::VirtualService, "tutorial", "recommendation");
        let dr = ObjectRef::namespaced(Kind::DestinationRule, "tutorial", "recommendation");
        let elsewhere = ObjectRef::namespaced(Kind::VirtualService, "shop", "ledger");
        let answered = |version: &str| serde_json::json!({"metadata": {"resourceVersion": version}});
        for (target, version) in [(&vs, "7"), (&vs, "9"), (&elsewhere, "3")] {
            let object = serde_json::json!({});
            writes.note(&Operation::Apply { target: target.clone(), object }, Some(&answered(version)));
        }
        writes.note(&Operation::Delete { target: dr.clone() }, None);
        let mut recent = writes.recent_in("tutorial").unwrap();
        recent.sort_by_key(|(target, _)| target.to_string());
        assert_eq!(recent, [(dr, None), (vs.clone(), Some("9".to_owned()))]);
        let _writing = writes.begin(&vs);
        assert_eq!(writes.recent_in("tutorial"), None, "a write in flight: nothing can be said yet");
        assert!(writes.recent_in("shop").is_some());
    }
}
