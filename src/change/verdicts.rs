//! The API server's dry-run verdicts of previewed changes, kept a short while so that
//! applying exactly what was previewed does not pay the same dry run twice: the preview's
//! dry run stands for the apply's when the change's operations are the same, byte for byte,
//! and every object is still at the resourceVersion the dry run saw (the change path reads
//! them live before it looks here). A verdict is used once.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::Operation;

use super::Documents;

/// How long a preview's dry run stands for an apply: a person reading a preview takes
/// seconds to minutes; past this the dry run runs again.
const KEPT_FOR: Duration = Duration::from_secs(300);
/// How many verdicts are kept at most; the oldest goes first.
const CAPACITY: usize = 256;
/// A change whose operations serialize to more than this is not kept (bounds the memory).
const LARGEST_KEY: usize = 256 * 1024;

struct Verdict {
    after: Documents,
    at: Instant,
}

#[derive(Default)]
pub struct DryRunVerdicts {
    kept: Mutex<HashMap<String, Verdict>>,
}

impl DryRunVerdicts {
    /// Keeps `after`, the dry run's result of `operations` against objects at `versions`.
    pub fn keep(&self, operations: &[Operation], versions: &[Option<String>], after: &Documents) {
        self.keep_at(operations, versions, after, Instant::now());
    }

    /// The kept dry-run result of `operations` against objects at `versions`, if a preview
    /// dry-ran exactly that within [`KEPT_FOR`]; taken, so it stands for one apply.
    pub fn take(&self, operations: &[Operation], versions: &[Option<String>]) -> Option<Documents> {
        self.take_at(operations, versions, Instant::now())
    }

    fn keep_at(&self, operations: &[Operation], versions: &[Option<String>], after: &Documents, now: Instant) {
        let Some(key) = key(operations, versions) else { return };
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.retain(|_, verdict| now.duration_since(verdict.at) < KEPT_FOR);
        if kept.len() >= CAPACITY
            && let Some(oldest) = kept.iter().min_by_key(|(_, verdict)| verdict.at).map(|(key, _)| key.clone())
        {
            kept.remove(&oldest);
        }
        kept.insert(key, Verdict { after: after.clone(), at: now });
    }

    fn take_at(&self, operations: &[Operation], versions: &[Option<String>], now: Instant) -> Option<Documents> {
        let key = key(operations, versions)?;
        let verdict = self.kept.lock().unwrap_or_else(|e| e.into_inner()).remove(&key)?;
        (now.duration_since(verdict.at) < KEPT_FOR).then_some(verdict.after)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.kept.lock().unwrap().len()
    }
}

/// The operations as they are recorded, with the versions of their objects: equal keys mean
/// the API server was asked the same thing about the same objects.
fn key(operations: &[Operation], versions: &[Option<String>]) -> Option<String> {
    let operations: Vec<Value> = operations.iter().map(Operation::to_record).collect();
    let key = serde_json::to_string(&(operations, versions)).ok()?;
    (key.len() <= LARGEST_KEY).then_some(key)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::cluster::{Kind, ObjectRef};

    fn apply(weight: u32) -> Vec<Operation> {
        let target = ObjectRef::namespaced(Kind::VirtualService, "shop", "ledger");
        vec![Operation::Apply { target, object: json!({"spec": {"http": [{"route": [{"weight": weight}]}]}}) }]
    }

    fn at(version: &str) -> Vec<Option<String>> {
        vec![Some(version.to_owned())]
    }

    fn dry_run_result(weight: u32) -> Documents {
        Documents::new(vec![Some(json!({"spec": {"http": [{"route": [{"weight": weight}]}]}}))])
    }

    #[test]
    fn a_verdict_stands_for_exactly_the_previewed_operations_on_the_same_versions_once() {
        let verdicts = DryRunVerdicts::default();
        verdicts.keep(&apply(90), &at("7"), &dry_run_result(90));
        assert!(verdicts.take(&apply(80), &at("7")).is_none(), "other operations");
        assert!(verdicts.take(&apply(90), &at("8")).is_none(), "the object moved since the preview");
        assert!(verdicts.take(&apply(90), &[None]).is_none(), "the object is gone");
        let taken = verdicts.take(&apply(90), &at("7")).expect("the previewed change");
        assert_eq!(taken.to_document(), dry_run_result(90).to_document());
        assert!(verdicts.take(&apply(90), &at("7")).is_none(), "a verdict stands for one apply");
    }

    #[test]
    fn a_verdict_expires() {
        let verdicts = DryRunVerdicts::default();
        let previewed = Instant::now();
        verdicts.keep_at(&apply(90), &at("7"), &dry_run_result(90), previewed);
        assert!(verdicts.take_at(&apply(90), &at("7"), previewed + KEPT_FOR).is_none());
    }

    #[test]
    fn at_most_capacity_verdicts_are_kept_the_oldest_going_first() {
        let verdicts = DryRunVerdicts::default();
        let start = Instant::now();
        for weight in 0..CAPACITY as u32 + 10 {
            let when = start + Duration::from_millis(weight.into());
            verdicts.keep_at(&apply(weight), &at("7"), &dry_run_result(weight), when);
        }
        assert_eq!(verdicts.len(), CAPACITY);
        assert!(verdicts.take(&apply(0), &at("7")).is_none(), "the oldest went");
        assert!(verdicts.take(&apply(CAPACITY as u32 + 9), &at("7")).is_some(), "the newest stays");
    }
}
