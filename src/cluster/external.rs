//! Changes made behind signalbox's back (kubectl, GitOps controllers): found in the events
//! of the caches' watches of the managed namespaces and attributed to their field manager
//! from `managedFields`.
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use futures::future::BoxFuture;
use kube::api::DynamicObject;
use kube::runtime::watcher::Event;
use serde_json::Value;

use super::bounded::same_content;
use super::kinds::{Kind, ObjectRef};
use super::objects::{FIELD_MANAGER, without_server_fields};

/// The kinds whose outside changes are recorded.
pub const WATCHED: [Kind; 5] =
    [Kind::VirtualService, Kind::DestinationRule, Kind::HTTPRoute, Kind::Deployment, Kind::Service];

/// A change signalbox did not make.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalChange {
    pub target: ObjectRef,
    pub before: Option<Value>,
    pub after: Option<Value>,
    /// The field manager that made it and how.
    pub author: Author,
    /// The resourceVersion the change produced (None for a deletion).
    pub resource_version: Option<String>,
}

/// Who made an outside change, as far as the object tells: a field manager and its
/// operation. A field manager is whatever name the client chose (`kubectl --field-manager=
/// alice@example.com` is allowed), so it is never shown as a user: see [`Author::actor`].
#[derive(Debug, Clone, PartialEq)]
pub struct Author {
    /// e.g. `kubectl-client-side-apply`; None for a deletion, which names none.
    pub manager: Option<String>,
    /// `Update`, `Apply` or `Delete`.
    pub operation: String,
}

/// The most bytes of a field manager's name kept (the API server allows 128).
const MANAGER_BYTES: usize = 128;

impl Author {
    fn new(manager: &str, operation: &str) -> Self {
        Self { manager: Some(clean_manager(manager)), operation: operation.to_owned() }
    }

    /// The author of a deletion: the API server names nobody.
    fn deletion() -> Self {
        Self { manager: None, operation: "Delete".to_owned() }
    }

    /// The actor an audit entry names: `field manager alice@example.com (unverified)`, so a
    /// client-chosen name can never read as a signed-in user or as signalbox itself;
    /// `unknown (a deletion names no field manager)` for a deletion.
    pub fn actor(&self) -> String {
        match &self.manager {
            Some(manager) => format!("field manager {manager} (unverified)"),
            None if self.operation == "Delete" => "unknown (a deletion names no field manager)".to_owned(),
            None => "unknown (no field manager)".to_owned(),
        }
    }

    /// The name changes are counted under for the rate limit (deletions together).
    pub fn manager_or_unknown(&self) -> &str {
        self.manager.as_deref().unwrap_or("unknown")
    }
}

/// A manager name as shown: at most [`MANAGER_BYTES`], without control characters (the API
/// server refuses them today; a page or a log line must not depend on that).
fn clean_manager(manager: &str) -> String {
    let mut clean: String = manager.chars().map(|c| if c.is_control() { '?' } else { c }).collect();
    if clean.len() > MANAGER_BYTES {
        let mut end = MANAGER_BYTES;
        while !clean.is_char_boundary(end) {
            end -= 1;
        }
        clean.truncate(end);
        clean.push('…');
    }
    clean
}

/// `field manager kubectl-edit (unverified), Update`.
impl std::fmt::Display for Author {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}, {}", self.actor(), self.operation)
    }
}

/// When each host's routing last changed outside signalbox (epoch ms), for the overview.
#[derive(Clone, Default)]
pub struct ExternalActivity(Arc<Mutex<HashMap<(String, String), i64>>>);

impl ExternalActivity {
    /// Notes a change known to be made outside signalbox (after its own writes are filtered
    /// out: noting every watched change lit the overview's badge for signalbox's own edits),
    /// under every host the object routes.
    pub fn note(&self, change: &ExternalChange) {
        let namespace = change.target.namespace.clone().unwrap_or_default();
        let objects = change.before.iter().chain(&change.after);
        let hosts: Vec<String> =
            objects.flat_map(|object| routed_hosts(change.target.kind, object, &namespace)).collect();
        let now = jiff::Timestamp::now().as_millisecond();
        let mut changes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for host in hosts {
            changes.insert((namespace.clone(), host), now);
        }
    }

    /// The hosts of `namespace` whose routing changed outside signalbox within the last
    /// `within_ms`: one look for a whole page of services (usually none).
    pub fn routing_changed_recently(&self, namespace: &str, within_ms: i64) -> Vec<String> {
        let changes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if changes.is_empty() {
            return Vec::new();
        }
        let now = jiff::Timestamp::now().as_millisecond();
        let recent = changes.iter().filter(|((ns, _), at)| ns == namespace && now - **at <= within_ms);
        recent.map(|((_, host), _)| host.clone()).collect()
    }
}

/// The hosts of `namespace` a VirtualService (`spec.hosts`) or DestinationRule
/// (`spec.host`) routes, as short names: routing is found by what it routes, not by the
/// object's name (see [`crate::policy::lookup`]).
pub fn routed_hosts(kind: Kind, object: &Value, namespace: &str) -> Vec<String> {
    let spec = &object["spec"];
    let names: Vec<&str> = match kind {
        Kind::VirtualService => spec["hosts"].as_array().into_iter().flatten().filter_map(Value::as_str).collect(),
        Kind::DestinationRule => spec["host"].as_str().into_iter().collect(),
        Kind::HTTPRoute => {
            let parents = spec["parentRefs"].as_array().into_iter().flatten();
            return parents
                .filter(|parent| parent["group"] == "" && parent["kind"] == "Service")
                .filter_map(|parent| parent["name"].as_str().map(String::from))
                .collect();
        }
        _ => Vec::new(),
    };
    let mut hosts: Vec<String> = names
        .into_iter()
        .filter_map(|name| {
            let short = name.split('.').next()?;
            // Wildcards (`*`, `*.example.com`) name no Service.
            let label = !short.is_empty() && short.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            (label && crate::policy::refers_to_host(name, short, Some(namespace))).then(|| short.to_owned())
        })
        .collect();
    hosts.dedup();
    hosts
}

/// Takes each outside change found.
type Record = Arc<dyn Fn(ExternalChange) + Send + Sync>;
/// The last recorded state of each object of a kind in a namespace, by name (None: its
/// last recorded change deleted it).
type Baseline = Arc<dyn Fn(Kind, String) -> BoxFuture<'static, HashMap<String, Option<Value>>> + Send + Sync>;

/// Where outside changes go, and what they are compared with at startup.
///
/// Detection has no watch of its own: the caches' watch of each kind and namespace feeds
/// it (see `cache.rs`), so the API server serves one watch per kind and namespace, and the
/// cache and the audit log see the same events in the same order.
#[derive(Clone)]
pub struct OutsideChanges {
    record: Record,
    baseline: Baseline,
}

impl OutsideChanges {
    /// `record` gets each outside change, in the order they were seen. `baseline` gives the
    /// last recorded state of each object of a kind in a namespace (from the audit log; None
    /// for an object whose last recorded change deleted it).
    pub fn new<B, BFut>(record: impl Fn(ExternalChange) + Send + Sync + 'static, baseline: B) -> Self
    where
        B: Fn(Kind, String) -> BFut + Send + Sync + 'static,
        BFut: Future<Output = HashMap<String, Option<Value>>> + Send + 'static,
    {
        Self { record: Arc::new(record), baseline: Arc::new(move |kind, namespace| baseline(kind, namespace).boxed()) }
    }

    /// The detector for one kind in one namespace, or None for a kind whose outside changes
    /// are not recorded. Reads the baseline first, so the first listing is compared with it.
    pub async fn detector(&self, kind: Kind, namespace: &str) -> Option<Detector> {
        if !WATCHED.contains(&kind) {
            return None;
        }
        let baseline = (self.baseline)(kind, namespace.to_owned()).await;
        let deleted = baseline.iter().filter(|(_, state)| state.is_none()).map(|(name, _)| name.clone()).collect();
        let seen = baseline.into_iter().filter_map(|(name, state)| Some((name, Kept::of(&state?)))).collect();
        Some(Detector {
            kind,
            namespace: namespace.to_owned(),
            seen,
            deleted,
            listed: None,
            first_listing: true,
            record: self.record.clone(),
        })
    }
}

/// Finds the outside changes of one kind in one namespace in the events of its watch.
///
/// The first listing is compared with the baseline, so a change made while signalbox was
/// down is recorded once, and once recorded it is the new baseline. Every later re-listing
/// (after a watch gap) is compared with the state seen before the gap.
pub struct Detector {
    kind: Kind,
    namespace: String,
    /// The last state of each object, as signalbox knows it.
    seen: HashMap<String, Kept>,
    /// The objects whose last recorded change deleted them, until the first listing.
    deleted: HashSet<String>,
    /// A listing in progress (between `Init` and `InitDone`).
    listed: Option<HashMap<String, DynamicObject>>,
    first_listing: bool,
    record: Record,
}

impl Detector {
    /// Records the changes `event` shows.
    pub fn observe(&mut self, event: Event<DynamicObject>) {
        let (kind, namespace) = (self.kind, self.namespace.as_str());
        let changes = match event {
            Event::Init => {
                self.listed = Some(HashMap::new());
                Vec::new()
            }
            Event::InitApply(object) => {
                self.listed.get_or_insert_default().insert(name_of(&object), object);
                Vec::new()
            }
            Event::InitDone => {
                let listing = self.listed.take().unwrap_or_default();
                let deleted = if self.first_listing { std::mem::take(&mut self.deleted) } else { HashSet::new() };
                let changes = relisted(&mut self.seen, &deleted, kind, namespace, listing, self.first_listing);
                self.first_listing = false;
                changes
            }
            Event::Apply(object) => applied(&mut self.seen, kind, namespace, &object).into_iter().collect(),
            Event::Delete(object) => deleted(&mut self.seen, kind, namespace, &object).into_iter().collect(),
        };
        for change in changes {
            (self.record)(change);
        }
    }
}

/// A full listing: every object that differs from what was seen before (or recorded before
/// signalbox started), and every object seen before that is gone. On the first listing an
/// object the audit log recorded as deleted (`deleted`) was created again while signalbox
/// was down; one the log never recorded at all (it predates signalbox) is only
/// remembered: its author cannot be told from a creation signalbox missed.
fn relisted(
    seen: &mut HashMap<String, Kept>,
    deleted: &HashSet<String>,
    kind: Kind,
    namespace: &str,
    listed: HashMap<String, DynamicObject>,
    first: bool,
) -> Vec<ExternalChange> {
    let mut changes = Vec::new();
    for (name, object) in &listed {
        if first && !seen.contains_key(name) && !deleted.contains(name) {
            seen.insert(name.clone(), Kept::of(&state_of(object)));
        } else {
            changes.extend(applied(seen, kind, namespace, object));
        }
    }
    let gone: Vec<String> = seen.keys().filter(|name| !listed.contains_key(*name)).cloned().collect();
    for name in gone {
        let before = seen.remove(&name).map(|kept| kept.value());
        changes.push(ExternalChange {
            target: ObjectRef::namespaced(kind, namespace, &name),
            before,
            after: None,
            author: Author::deletion(),
            resource_version: None,
        });
    }
    changes
}

/// An object's last state kept as its JSON text: at a thousand namespaces the parsed values
/// of every watched object were most of signalbox's memory (BENCHMARKS.md, "Many
/// namespaces"); the text is parsed again only for a change to record.
struct Kept(Box<str>);

impl Kept {
    fn of(state: &Value) -> Self {
        Self(state.to_string().into_boxed_str())
    }

    fn value(&self) -> Value {
        serde_json::from_str(&self.0).unwrap_or(Value::Null)
    }
}

fn name_of(object: &DynamicObject) -> String {
    object.metadata.name.clone().unwrap_or_default()
}

fn state_of(object: &DynamicObject) -> Value {
    without_server_fields(serde_json::to_value(object).unwrap_or(Value::Null))
}

fn applied(
    seen: &mut HashMap<String, Kept>,
    kind: Kind,
    namespace: &str,
    object: &DynamicObject,
) -> Option<ExternalChange> {
    let name = name_of(object);
    let after = state_of(object);
    let before = seen.insert(name.clone(), Kept::of(&after)).map(|kept| kept.value());
    if before.as_ref().is_some_and(|before| same_content(before, &after)) {
        return None; // status or server-maintained fields only
    }
    // Whether signalbox wrote this version is decided by the caller (it knows the
    // resourceVersions its writes produced); the author named is the newest other manager.
    let author = latest_author(object).unwrap_or_else(|| Author { manager: None, operation: "Update".to_owned() });
    Some(ExternalChange {
        target: ObjectRef::namespaced(kind, namespace, &name),
        before,
        after: Some(after),
        author,
        resource_version: object.metadata.resource_version.clone(),
    })
}

fn deleted(
    seen: &mut HashMap<String, Kept>,
    kind: Kind,
    namespace: &str,
    object: &DynamicObject,
) -> Option<ExternalChange> {
    let name = name_of(object);
    let before = seen.remove(&name).map(|kept| kept.value());
    // A deletion carries no manager; signalbox's own deletions are recognised by the
    // caller through the audit log.
    Some(ExternalChange {
        target: ObjectRef::namespaced(kind, namespace, &name),
        before,
        after: None,
        author: Author::deletion(),
        resource_version: None,
    })
}

/// The manager whose latest non-status write is newest; on a tie (`time` has seconds),
/// one other than signalbox's, whose own writes the caller has already left out by the
/// resourceVersions they produced. A change that reaches here and names `signalbox` as
/// its newest manager was made by someone using that name: they are named, not skipped
/// (skipping them pinned the change on whichever manager wrote before).
fn latest_author(object: &DynamicObject) -> Option<Author> {
    object
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|entry| entry.subresource.as_deref().unwrap_or("").is_empty())
        .max_by_key(|entry| (entry.time.as_ref().map(|t| t.0), entry.manager.as_deref() != Some(FIELD_MANAGER)))
        .map(|entry| {
            Author::new(entry.manager.as_deref().unwrap_or_default(), entry.operation.as_deref().unwrap_or_default())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn outside_changes_are_noted_for_the_hosts_the_objects_route_not_their_names() {
        let vs = json!({"metadata": {"name": "reco-routes"},
            "spec": {"hosts": ["recommendation.tutorial.svc.cluster.local", "preference", "ratings.otherns", "*"]}});
        assert_eq!(routed_hosts(Kind::VirtualService, &vs, "tutorial"), ["recommendation", "preference"]);
        let dr = json!({"metadata": {"name": "reco-dr"}, "spec": {"host": "recommendation.tutorial"}});
        assert_eq!(routed_hosts(Kind::DestinationRule, &dr, "tutorial"), ["recommendation"]);
        assert!(routed_hosts(Kind::Service, &vs, "tutorial").is_empty());

        let activity = ExternalActivity::default();
        activity.note(&ExternalChange {
            target: ObjectRef::namespaced(Kind::VirtualService, "tutorial", "reco-routes"),
            before: None,
            after: Some(vs),
            author: Author::new("kubectl", "Update"),
            resource_version: Some("1".into()),
        });
        let mut changed = activity.routing_changed_recently("tutorial", 60_000);
        changed.sort();
        assert_eq!(changed, ["preference", "recommendation"], "by the hosts routed, not the object's name");
        assert!(activity.routing_changed_recently("otherns", 60_000).is_empty());
    }

    fn object(name: &str, managers: &[(&str, &str, &str)]) -> DynamicObject {
        let managed: Vec<Value> = managers
            .iter()
            .map(|(manager, operation, time)| {
                json!({"manager": manager, "operation": operation, "time": time, "apiVersion": "networking.istio.io/v1"})
            })
            .collect();
        serde_json::from_value(json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": name, "namespace": "t", "resourceVersion": "9", "managedFields": managed},
            "spec": {"hosts": [name]}}))
        .unwrap()
    }

    #[test]
    fn a_change_under_signalboxs_name_is_pinned_on_that_name_not_on_an_earlier_manager() {
        let spoofed = object(
            "reco",
            &[("kubectl-edit", "Update", "2026-01-01T10:00:00Z"), (FIELD_MANAGER, "Apply", "2026-01-01T10:05:00Z")],
        );
        let author = latest_author(&spoofed).unwrap();
        assert_eq!(author.actor(), "field manager signalbox (unverified)");
        let tie = object(
            "reco",
            &[(FIELD_MANAGER, "Apply", "2026-01-01T10:00:00Z"), ("kubectl-edit", "Update", "2026-01-01T10:00:00Z")],
        );
        assert_eq!(latest_author(&tie).unwrap().manager.as_deref(), Some("kubectl-edit"), "a tie is not signalbox's");
    }

    #[test]
    fn a_field_manager_is_shown_as_unverified_never_as_a_user() {
        for name in ["alice@example.com", "system:signalbox", "local:root"] {
            let author = Author::new(name, "Apply");
            assert_eq!(author.actor(), format!("field manager {name} (unverified)"));
            assert_eq!(author.to_string(), format!("field manager {name} (unverified), Apply"));
        }
        assert_eq!(Author::deletion().actor(), "unknown (a deletion names no field manager)");
        let long = Author::new(&format!("a\nb{}", "x".repeat(300)), "Update");
        let manager = long.manager.unwrap();
        assert!(manager.starts_with("a?b") && manager.len() <= MANAGER_BYTES + 3, "{manager}");
    }

    #[test]
    fn an_object_recorded_as_deleted_and_listed_at_start_was_created_while_down() {
        let mut seen = HashMap::new();
        let deleted: HashSet<String> = ["reco".to_owned()].into();
        let listed: HashMap<String, DynamicObject> = [
            ("reco".to_owned(), object("reco", &[("kubectl-create", "Update", "2026-01-01T10:00:00Z")])),
            ("older".to_owned(), object("older", &[("helm", "Update", "2026-01-01T10:00:00Z")])),
        ]
        .into();
        let changes = relisted(&mut seen, &deleted, Kind::VirtualService, "t", listed, true);
        assert_eq!(changes.len(), 1, "the never-recorded object is only remembered: {changes:?}");
        assert_eq!((changes[0].target.name.as_str(), changes[0].before.is_none()), ("reco", true));
        assert_eq!(changes[0].author.manager.as_deref(), Some("kubectl-create"));
        assert!(seen.contains_key("older"));
    }
}
