//! Changes made outside signalbox (kubectl, GitOps), as the audit log records them. Whoever
//! can edit an object decides how large it is, how often it changes and which field
//! manager it names, so none of that may decide what the log holds:
//!
//! - the actor is `field manager X (unverified)` ([`Author::actor`]): a client picks the
//!   name, so `alice@example.com` or `system:signalbox` never reads as a user or signalbox;
//! - `before` and `after` are kept only up to 64 KiB each ([`bounded_document`]), and the
//!   summary says when one was not;
//! - at most [`PER_MANAGER`] changes per field manager and [`OVERALL`] together are
//!   recorded one by one; the others are counted, and one entry per namespace
//!   ([`UNRECORDED_ACTION`]) says how many, by whom, to what, at most every
//!   [`SUMMARY_EVERY`]. The next start compares the cluster with the last recorded states,
//!   so where an object ended up is recorded even when the steps were only counted.
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::audit::{AuditStore, NewEntry, Outcome, Source, UNRECORDED_ACTION};
use crate::cluster::bounded::{bounded_document, is_not_stored};
use crate::cluster::external::{ExternalActivity, ExternalChange};

use super::ChangePath;
use super::refusals::{Bucket, EXCERPT_BYTES, Rate, truncate};

/// Changes one field manager may have recorded one by one at once, and how fast that comes
/// back: a GitOps sync of 60 objects is recorded whole; a loop, one change per 10 s.
const PER_MANAGER: Rate = Rate { burst: 60.0, per_second: 0.1 };
/// Changes all field managers together may have recorded one by one at once, and how fast
/// that comes back (a name per change does not get around the limit).
const OVERALL: Rate = Rate { burst: 120.0, per_second: 0.5 };
/// How long counted changes wait before their summary entry is written: one summary per
/// namespace at most this often, however long a loop runs.
const SUMMARY_EVERY: Duration = Duration::from_secs(5);
/// Field managers a summary names (the rest are counted together), and objects per manager.
const SUMMARY_MANAGERS: usize = 8;
const SUMMARY_OBJECTS: usize = 5;
/// Buckets kept before full (idle) ones are forgotten.
const MAX_TRACKED_MANAGERS: usize = 1024;
/// How long a change seen by a watch waits before it is compared with signalbox's own
/// writes: our own write's response may arrive after its watch event.
const OWN_WRITE_GRACE: Duration = Duration::from_millis(500);
/// Who says that changes were counted, not recorded: signalbox itself.
const SYSTEM_ACTOR: &str = "system:signalbox";

/// The audit entry of one outside change: attributed to its field manager, unverified,
/// with documents over 64 KiB replaced by a marker the summary mentions.
pub fn entry(change: &ExternalChange) -> NewEntry {
    let verb = match (&change.before, &change.after) {
        (None, Some(_)) => "create",
        (Some(_), None) => "delete",
        _ => "update",
    };
    let target = &change.target;
    let before = change.before.clone().map(bounded_document);
    let after = change.after.clone().map(bounded_document);
    let notes: String = [("before", &before), ("after", &after)]
        .into_iter()
        .filter(|(_, document)| document.as_ref().is_some_and(is_not_stored))
        .map(|(which, document)| format!("; {which}: {}", not_stored_reason(document.as_ref())))
        .collect();
    NewEntry {
        actor: change.author.actor(),
        groups: Vec::new(),
        source: Source::External,
        action: format!("external.{verb}"),
        namespace: target.namespace.clone().unwrap_or_default(),
        kind: target.kind.to_string(),
        name: target.name.clone(),
        summary: format!("{} {} {verb}d outside signalbox by {}{notes}", target.kind, target.name, change.author),
        before,
        after,
        operations: json!([]),
        outcome: Outcome::Applied,
        error: None,
        request_id: None,
        reverts: None,
    }
}

fn not_stored_reason(document: Option<&serde_json::Value>) -> String {
    let marker = document.map(|d| &d[crate::cluster::bounded::NOT_STORED]);
    marker.and_then(|m| m["reason"].as_str()).unwrap_or("not stored").to_owned()
}

/// Per-field-manager and overall token buckets for outside changes.
struct Limiter {
    overall: Bucket,
    managers: BTreeMap<String, Bucket>,
}

impl Limiter {
    fn new(now: Instant) -> Self {
        Self { overall: Bucket::full(OVERALL, now), managers: BTreeMap::new() }
    }

    /// Takes one change of `manager` from its and the overall allowance, if both have one.
    fn admit(&mut self, manager: &str, now: Instant) -> bool {
        if self.managers.len() >= MAX_TRACKED_MANAGERS {
            self.managers.retain(|_, bucket| {
                bucket.refill(PER_MANAGER, now);
                bucket.tokens < PER_MANAGER.burst
            });
        }
        self.overall.refill(OVERALL, now);
        let own = self.managers.entry(manager.to_owned()).or_insert_with(|| Bucket::full(PER_MANAGER, now));
        own.refill(PER_MANAGER, now);
        if own.tokens < 1.0 || self.overall.tokens < 1.0 {
            return false;
        }
        own.tokens -= 1.0;
        self.overall.tokens -= 1.0;
        true
    }
}

/// The changes of one namespace counted instead of recorded, since the last summary.
#[derive(Default)]
struct Counted {
    changes: u64,
    first_ms: i64,
    last_ms: i64,
    /// By actor (`field manager X (unverified)`), for at most [`SUMMARY_MANAGERS`] of them.
    managers: BTreeMap<String, ByManager>,
    /// Changes by the managers beyond those, and how many managers.
    others: u64,
    other_managers: BTreeSet<String>,
}

#[derive(Default)]
struct ByManager {
    changes: u64,
    objects: BTreeSet<String>,
    more_objects: bool,
}

impl Counted {
    fn add(&mut self, change: &ExternalChange, now_ms: i64) {
        if self.changes == 0 {
            self.first_ms = now_ms;
        }
        self.changes += 1;
        self.last_ms = now_ms;
        let actor = change.author.actor();
        if !self.managers.contains_key(&actor) && self.managers.len() >= SUMMARY_MANAGERS {
            self.others += 1;
            // Only counted up to a bound: a name per change must not grow this set.
            if self.other_managers.len() < MAX_TRACKED_MANAGERS {
                self.other_managers.insert(actor);
            }
            return;
        }
        let by = self.managers.entry(actor).or_default();
        by.changes += 1;
        let object = format!("{} {}", change.target.kind, change.target.name);
        if by.objects.len() < SUMMARY_OBJECTS || by.objects.contains(&object) {
            by.objects.insert(object);
        } else {
            by.more_objects = true;
        }
    }

    /// `143 further outside changes not recorded one by one …: 140 by field manager loop
    /// (unverified) to VirtualService big; …`.
    fn summary(&self) -> String {
        let mut parts: Vec<String> = self
            .managers
            .iter()
            .map(|(actor, by)| {
                let objects = by.objects.iter().cloned().collect::<Vec<_>>().join(", ");
                let more = if by.more_objects { " and others" } else { "" };
                format!("{} by {actor} to {objects}{more}", by.changes)
            })
            .collect();
        if self.others > 0 {
            parts.push(format!("{} by {} other field managers", self.others, self.other_managers.len()));
        }
        let text = format!(
            "{} further outside changes not recorded one by one (over the rate limit of {} at once and 1 per {} s per field manager, {} at once overall): {}",
            self.changes,
            PER_MANAGER.burst,
            1.0 / PER_MANAGER.per_second,
            OVERALL.burst,
            parts.join("; ")
        );
        truncate(&text, EXCERPT_BYTES)
    }

    fn entry(&self, namespace: &str) -> NewEntry {
        let managers: Vec<_> = self
            .managers
            .iter()
            .map(|(actor, by)| json!({"actor": actor, "changes": by.changes, "objects": by.objects, "moreObjects": by.more_objects}))
            .collect();
        let after = json!({
            "unrecorded": self.changes,
            "from": crate::audit::format_time_ms(self.first_ms),
            "to": crate::audit::format_time_ms(self.last_ms),
            "byFieldManager": managers,
            "otherFieldManagers": {"managers": self.other_managers.len(), "changes": self.others},
        });
        NewEntry {
            actor: SYSTEM_ACTOR.to_owned(),
            groups: Vec::new(),
            source: Source::External,
            action: UNRECORDED_ACTION.to_owned(),
            namespace: namespace.to_owned(),
            kind: String::new(),
            name: String::new(),
            summary: self.summary(),
            before: None,
            after: Some(after),
            operations: json!([]),
            outcome: Outcome::Applied,
            error: None,
            request_id: None,
            reverts: None,
        }
    }
}

/// Decides, change by change, what the log records: an entry, or a count for the next
/// summary.
pub struct OutsideRecorder {
    limiter: Limiter,
    counted: BTreeMap<String, Counted>,
    /// When the oldest counted change was counted.
    counting_since: Option<Instant>,
}

impl OutsideRecorder {
    pub fn new(now: Instant) -> Self {
        Self { limiter: Limiter::new(now), counted: BTreeMap::new(), counting_since: None }
    }

    /// The entry to record for `change`, or None when it was counted for a summary instead.
    pub fn admit(&mut self, change: &ExternalChange, now: Instant, now_ms: i64) -> Option<NewEntry> {
        if self.limiter.admit(change.author.manager_or_unknown(), now) {
            return Some(entry(change));
        }
        let namespace = change.target.namespace.clone().unwrap_or_default();
        self.counted.entry(namespace).or_default().add(change, now_ms);
        self.counting_since.get_or_insert(now);
        None
    }

    /// When the counted changes' summaries are due (None: nothing counted).
    pub fn summaries_due(&self) -> Option<Instant> {
        self.counting_since.map(|since| since + SUMMARY_EVERY)
    }

    /// One summary entry per namespace for what was counted, which is then forgotten.
    pub fn take_summaries(&mut self) -> Vec<NewEntry> {
        self.counting_since = None;
        std::mem::take(&mut self.counted).iter().map(|(namespace, counted)| counted.entry(namespace)).collect()
    }
}

/// Records the outside changes seen (each with when it was seen) as `external` entries,
/// leaving out the echoes of signalbox's own writes, within the rate limits.
pub fn spawn_recorder(
    mut seen: UnboundedReceiver<(tokio::time::Instant, ExternalChange)>,
    activity: ExternalActivity,
    audit: AuditStore,
    changes: ChangePath,
) {
    // Each change waits out its grace period from when it was seen, in order, in one task:
    // waiting inside the watch loop instead added 500 ms per event, so under a burst of
    // writes the log fell further and further behind the cluster.
    tokio::spawn(async move {
        let mut recorder = OutsideRecorder::new(Instant::now());
        loop {
            let due = recorder.summaries_due();
            let next = tokio::select! {
                next = seen.recv() => next,
                _ = tokio::time::sleep_until(due.map_or_else(tokio::time::Instant::now, Into::into)), if due.is_some() => {
                    for summary in recorder.take_summaries() {
                        record(&audit, &summary).await;
                    }
                    continue;
                }
            };
            let Some((at, change)) = next else { return };
            tokio::time::sleep_until(at + OWN_WRITE_GRACE).await;
            if changes.wrote(&change.target, change.resource_version.as_deref()).await {
                continue;
            }
            activity.note(&change);
            let now_ms = jiff::Timestamp::now().as_millisecond();
            if let Some(entry) = recorder.admit(&change, Instant::now(), now_ms) {
                let entry = with_overwrite_noted(&audit, entry, now_ms).await;
                record(&audit, &entry).await;
            }
        }
    });
}

/// How long after signalbox's change an outside change of the same object is said to
/// overwrite it (a GitOps sync undoing it comes within minutes).
pub const OVERWRITE_WINDOW_MS: i64 = 60 * 60 * 1000;

/// An outside change that overwrote one of signalbox's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overwrite {
    /// signalbox's change, and the outside one (audit ids).
    pub change: i64,
    pub outside: i64,
    /// Who made the outside change (`field manager argocd-controller (unverified)`).
    pub actor: String,
    pub seconds_later: i64,
}

/// What an outside change's summary says of the change of signalbox's it overwrites; the
/// words [`overwrites_of`] finds it by.
fn overwrite_note(change: i64) -> String {
    format!("overwrites signalbox's change #{change} ")
}

/// The outside change's entry, saying which change of signalbox's it overwrites when
/// signalbox changed the object within the last hour: "overwrites signalbox's change #12
/// from 14 s before". The entry page of #12 lists it as overwritten.
async fn with_overwrite_noted(audit: &AuditStore, mut entry: NewEntry, now_ms: i64) -> NewEntry {
    let last = audit.last_applied_to(&entry.namespace, &entry.kind, &entry.name).await;
    if let Ok(Some((id, time_ms))) = last
        && now_ms - time_ms <= OVERWRITE_WINDOW_MS
    {
        let seconds = (now_ms - time_ms).max(0) / 1000;
        entry.summary = format!("{}; {}from {seconds} s before", entry.summary, overwrite_note(id));
    }
    entry
}

/// The outside changes of an object (namespace, kind, name) that overwrote signalbox's
/// change `change` made at `time_ms`, at most `limit`, oldest first.
pub async fn overwrites_of(
    audit: &AuditStore,
    (namespace, kind, name): (&str, &str, &str),
    (change, time_ms): (i64, i64),
    limit: u32,
) -> Result<Vec<Overwrite>, crate::audit::AuditError> {
    let later = audit.outside_changes_after(namespace, kind, name, change, limit).await?;
    let note = overwrite_note(change);
    Ok(later
        .into_iter()
        .filter(|outside| outside.summary.contains(&note))
        .map(|outside| Overwrite {
            change,
            outside: outside.id,
            actor: outside.actor,
            seconds_later: (outside.time_ms - time_ms) / 1000,
        })
        .collect())
}

async fn record(audit: &AuditStore, entry: &NewEntry) {
    if let Err(error) = audit.record(entry).await {
        tracing::error!(%error, action = entry.action, kind = entry.kind, name = entry.name, "could not audit an external change");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::external::Author;
    use crate::cluster::{Kind, ObjectRef};

    fn change(manager: &str, name: &str) -> ExternalChange {
        ExternalChange {
            target: ObjectRef::namespaced(Kind::VirtualService, "t", name),
            before: Some(json!({"kind": "VirtualService", "metadata": {"name": name}, "spec": {"n": 1}})),
            after: Some(json!({"kind": "VirtualService", "metadata": {"name": name}, "spec": {"n": 2}})),
            author: Author { manager: Some(manager.to_owned()), operation: "Apply".to_owned() },
            resource_version: Some("2".into()),
        }
    }

    #[test]
    fn a_spoofed_manager_is_recorded_unverified_and_a_large_document_as_a_marker() {
        let mut spoofed = change("system:signalbox", "big");
        spoofed.after.as_mut().unwrap()["metadata"]["annotations"] = json!({"x": "y".repeat(200 * 1024)});
        let entry = entry(&spoofed);
        assert_eq!(entry.actor, "field manager system:signalbox (unverified)");
        assert!(entry.summary.contains("by field manager system:signalbox (unverified), Apply"), "{}", entry.summary);
        assert!(
            entry.summary.ends_with("; after: document of 201 KiB over the 64 KiB limit, not stored"),
            "{}",
            entry.summary
        );
        assert!(entry.after.as_ref().is_some_and(is_not_stored));
        assert!(entry.after.unwrap().to_string().len() < 1024);
        assert_eq!(entry.before, spoofed.before, "a small document is kept whole");
    }

    #[test]
    fn a_loop_of_changes_is_recorded_up_to_the_burst_then_counted_in_one_summary() {
        let now = Instant::now();
        let mut recorder = OutsideRecorder::new(now);
        let recorded =
            (0..200).filter(|i| recorder.admit(&change("loop", &format!("vs-{i}")), now, 0).is_some()).count();
        assert_eq!(recorded, PER_MANAGER.burst as usize);
        assert!(
            recorder.admit(&change("someone-else", "vs"), now, 0).is_some(),
            "another manager has its own allowance"
        );
        assert_eq!(recorder.summaries_due(), Some(now + SUMMARY_EVERY));
        let summaries = recorder.take_summaries();
        assert_eq!(summaries.len(), 1);
        let summary = &summaries[0];
        assert_eq!((summary.action.as_str(), summary.actor.as_str()), (UNRECORDED_ACTION, SYSTEM_ACTOR));
        assert!(
            summary.summary.starts_with("140 further outside changes not recorded one by one")
                && summary
                    .summary
                    .contains("140 by field manager loop (unverified) to VirtualService vs-60, VirtualService vs-61"),
            "{}",
            summary.summary
        );
        assert_eq!(summary.after.as_ref().unwrap()["unrecorded"], 140);
        assert_eq!(recorder.summaries_due(), None, "counted once");
        let later = now + Duration::from_secs(10);
        assert!(recorder.admit(&change("loop", "vs"), later, 0).is_some(), "one more per 10 s");
        assert!(recorder.admit(&change("loop", "vs"), later, 0).is_none());
    }

    #[test]
    fn a_name_per_change_meets_the_overall_limit_and_a_bounded_summary() {
        let now = Instant::now();
        let mut recorder = OutsideRecorder::new(now);
        let recorded = (0..1000)
            .filter(|i| recorder.admit(&change(&format!("m-{i}"), &format!("vs-{i}")), now, 0).is_some())
            .count();
        assert_eq!(recorded, OVERALL.burst as usize);
        let summary = recorder.take_summaries().remove(0);
        assert!(summary.summary.len() <= EXCERPT_BYTES + 3, "{}", summary.summary.len());
        assert!(summary.summary.contains("872 by 872 other field managers"), "{}", summary.summary);
        assert!(summary.after.unwrap().to_string().len() < 4096);
    }
}
