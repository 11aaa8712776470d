//! Refused attempts are audited, so without bounds an anonymous or refused actor could fill
//! the disk: each refusal keeps only an excerpt of what was asked ([`excerpt`]), and refusals
//! are rate limited per actor and overall ([`RefusalLimiter`]); beyond the limit a refused
//! attempt is answered 429 with `Retry-After` and not recorded. Every string a refusal
//! stores is bounded ([`bounded`]): what a refused client sent must not decide how much is
//! written.
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::audit::NewEntry;

/// The most of a refused attempt's operations, documents, summary or error the audit log keeps.
pub const EXCERPT_BYTES: usize = 4 * 1024;
/// The most bytes of a name a refusal records (actor, action, namespace, kind, object).
const NAME_BYTES: usize = 256;
/// The most bytes of a request id a refusal records (the web layer keeps 64 already).
const REQUEST_ID_BYTES: usize = 64;
/// The most bytes of the actor's group names a refusal records; the rest are counted.
const GROUPS_BYTES: usize = 1024;

/// Refusals one actor may have recorded at once, and how fast that allowance comes back.
const PER_ACTOR: Rate = Rate { burst: 60.0, per_second: 0.5 };
/// Refusals all actors together may have recorded at once, and how fast that comes back.
const OVERALL: Rate = Rate { burst: 300.0, per_second: 5.0 };
/// Buckets kept before full (idle) ones are forgotten.
const MAX_TRACKED_ACTORS: usize = 1024;

/// How many at once, and how fast that allowance comes back (also for outside changes).
#[derive(Debug, Clone, Copy)]
pub(super) struct Rate {
    pub(super) burst: f64,
    pub(super) per_second: f64,
}

/// A token bucket: `tokens` refills at the rate's speed up to its burst.
#[derive(Debug, Clone, Copy)]
pub(super) struct Bucket {
    pub(super) tokens: f64,
    updated: Instant,
}

impl Bucket {
    pub(super) fn full(rate: Rate, now: Instant) -> Self {
        Self { tokens: rate.burst, updated: now }
    }

    pub(super) fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        self.updated = now;
    }

    /// How long until one token is there (zero: now).
    fn wait(&self, rate: Rate) -> Duration {
        Duration::from_secs_f64(((1.0 - self.tokens) / rate.per_second).max(0.0))
    }
}

/// Per-actor and overall token buckets for refused attempts.
#[derive(Debug)]
pub struct RefusalLimiter {
    per_actor: Rate,
    overall: Rate,
    state: Mutex<Buckets>,
}

#[derive(Debug)]
struct Buckets {
    overall: Bucket,
    actors: HashMap<String, Bucket>,
}

impl Default for RefusalLimiter {
    fn default() -> Self {
        Self::new(PER_ACTOR, OVERALL)
    }
}

impl RefusalLimiter {
    fn new(per_actor: Rate, overall: Rate) -> Self {
        let buckets = Buckets { overall: Bucket::full(overall, Instant::now()), actors: HashMap::new() };
        Self { per_actor, overall, state: Mutex::new(buckets) }
    }

    /// Takes one refusal from `actor`'s and the overall allowance, or says how long to wait.
    pub fn admit(&self, actor: &str) -> Result<(), Duration> {
        self.admit_at(actor, Instant::now())
    }

    fn admit_at(&self, actor: &str, now: Instant) -> Result<(), Duration> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.actors.len() >= MAX_TRACKED_ACTORS {
            let per_actor = self.per_actor;
            state.actors.retain(|_, bucket| {
                bucket.refill(per_actor, now);
                bucket.tokens < per_actor.burst
            });
        }
        state.overall.refill(self.overall, now);
        let mut own = state.actors.get(actor).copied().unwrap_or_else(|| Bucket::full(self.per_actor, now));
        own.refill(self.per_actor, now);
        let wait = own.wait(self.per_actor).max(state.overall.wait(self.overall));
        if !wait.is_zero() {
            return Err(wait);
        }
        own.tokens -= 1.0;
        state.overall.tokens -= 1.0;
        state.actors.insert(actor.to_owned(), own);
        Ok(())
    }
}

/// `entry`, a refused attempt, as it is recorded: operations and documents as excerpts,
/// summary and error cut at [`EXCERPT_BYTES`], names at 256 bytes, the request id at 64, and
/// the actor's groups at 1 KiB (the ones left out counted in a last `… N more groups`).
pub fn bounded(mut entry: NewEntry) -> NewEntry {
    entry.operations = excerpt(entry.operations);
    entry.before = entry.before.map(excerpt_document);
    entry.after = entry.after.map(excerpt_document);
    entry.summary = truncate(&entry.summary, EXCERPT_BYTES);
    entry.error = entry.error.map(|error| truncate(&error, EXCERPT_BYTES));
    for name in [&mut entry.actor, &mut entry.action, &mut entry.namespace, &mut entry.kind, &mut entry.name] {
        *name = truncate(name, NAME_BYTES);
    }
    entry.request_id = entry.request_id.map(|id| cut(&id, REQUEST_ID_BYTES).to_owned());
    entry.groups = bounded_groups(entry.groups);
    entry
}

/// The first groups that fit in [`GROUPS_BYTES`] (each cut at 256 bytes), and a count of
/// the others.
fn bounded_groups(groups: Vec<String>) -> Vec<String> {
    let total = groups.len();
    let mut kept = Vec::new();
    let mut bytes = 0;
    for group in groups {
        let group = truncate(&group, NAME_BYTES);
        if bytes + group.len() > GROUPS_BYTES {
            break;
        }
        bytes += group.len();
        kept.push(group);
    }
    if kept.len() < total {
        kept.push(format!("… {} more groups", total - kept.len()));
    }
    kept
}

/// A document (`before` or `after`) as recorded for a refused attempt: as it is when small,
/// else its first [`EXCERPT_BYTES`] of JSON and its full size.
fn excerpt_document(document: Value) -> Value {
    let text = document.to_string();
    if text.len() <= EXCERPT_BYTES {
        return document;
    }
    json!({"excerpt": truncate(&text, EXCERPT_BYTES), "bytes": text.len(), "truncated": true})
}

/// `operations` as recorded for a refused attempt: as they are when small, else one record
/// with the first [`EXCERPT_BYTES`] of their JSON and their full size.
pub fn excerpt(operations: Value) -> Value {
    let text = operations.to_string();
    if text.len() <= EXCERPT_BYTES {
        return operations;
    }
    json!([{"excerpt": truncate(&text, EXCERPT_BYTES), "bytes": text.len(), "truncated": true}])
}

/// At most `max` bytes of `text`, cut at a character boundary, marked when cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    format!("{}…", cut(text, max))
}

/// The longest start of `text` of at most `max` bytes that ends at a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Rate = Rate { burst: 3.0, per_second: 1.0 };

    #[test]
    fn an_actor_beyond_its_burst_waits_and_others_do_not() {
        let limiter = RefusalLimiter::new(SMALL, Rate { burst: 100.0, per_second: 1.0 });
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.admit_at("anonymous", now), Ok(()));
        }
        let wait = limiter.admit_at("anonymous", now).expect_err("over the burst");
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1), "{wait:?}");
        assert_eq!(limiter.admit_at("alice", now), Ok(()), "another actor has its own allowance");
        assert_eq!(limiter.admit_at("anonymous", now + Duration::from_secs(1)), Ok(()), "refilled");
    }

    #[test]
    fn the_overall_limit_holds_across_actors() {
        let limiter = RefusalLimiter::new(SMALL, Rate { burst: 5.0, per_second: 0.5 });
        let now = Instant::now();
        for actor in 0..5 {
            assert_eq!(limiter.admit_at(&format!("user-{actor}"), now), Ok(()));
        }
        let wait = limiter.admit_at("someone-new", now).expect_err("over the overall burst");
        assert!(wait > Duration::from_millis(1900), "{wait:?}");
    }

    #[test]
    fn idle_actors_are_forgotten_so_the_map_stays_bounded() {
        let limiter = RefusalLimiter::new(SMALL, Rate { burst: 1e9, per_second: 1e9 });
        let now = Instant::now();
        for actor in 0..5 * MAX_TRACKED_ACTORS {
            let _ = limiter.admit_at(&format!("user-{actor}"), now + Duration::from_secs(actor as u64 * 10));
        }
        assert!(limiter.state.lock().unwrap().actors.len() <= MAX_TRACKED_ACTORS);
    }

    #[test]
    fn large_operations_become_a_bounded_excerpt() {
        let small = json!([{"kind": "Deployment", "name": "a"}]);
        assert_eq!(excerpt(small.clone()), small);
        let large = json!([{"apply": {"padding": "é".repeat(100_000)}}]);
        let kept = excerpt(large);
        assert!(kept.to_string().len() < EXCERPT_BYTES + 200, "{}", kept.to_string().len());
        assert_eq!(kept[0]["truncated"], true);
        assert!(kept[0]["bytes"].as_u64().unwrap() > 200_000);
        assert_eq!(truncate("aé", 2), "a…");
    }

    fn refused(padding: &str) -> NewEntry {
        NewEntry {
            actor: format!("alice{padding}"),
            groups: (0..256).map(|i| format!("group-{i}-{padding}")).collect(),
            source: crate::audit::Source::Api,
            action: "route.update".into(),
            namespace: format!("tutorial{padding}"),
            kind: "VirtualService".into(),
            name: format!("recommendation{padding}"),
            summary: format!("summary{padding}"),
            before: Some(json!({"kind": "VirtualService", "spec": {"padding": padding}})),
            after: None,
            operations: json!([{"apply": {"padding": padding}}]),
            outcome: crate::audit::Outcome::Denied,
            error: Some(format!("error{padding}")),
            request_id: Some(format!("id{padding}")),
            reverts: None,
        }
    }

    #[test]
    fn every_string_of_a_refusal_is_bounded_and_small_ones_are_kept_whole() {
        let padding = "é".repeat(50_000);
        let entry = bounded(refused(&padding));
        for (field, text) in [
            ("actor", &entry.actor),
            ("namespace", &entry.namespace),
            ("name", &entry.name),
            ("summary", &entry.summary),
            ("error", entry.error.as_ref().unwrap()),
        ] {
            assert!(text.len() <= EXCERPT_BYTES + 3, "{field}: {} bytes", text.len());
        }
        assert!(entry.request_id.as_ref().unwrap().len() <= REQUEST_ID_BYTES);
        let before = entry.before.unwrap();
        assert_eq!(before["truncated"], true);
        assert!(before.to_string().len() < EXCERPT_BYTES + 200, "{}", before.to_string().len());
        let groups: usize = entry.groups.iter().map(String::len).sum();
        assert!(groups <= GROUPS_BYTES + 64, "{groups} bytes of groups");
        assert_eq!(entry.groups.last().map(String::as_str), Some("… 253 more groups"), "{:?}", entry.groups);

        let small = refused("");
        let kept = bounded(small.clone());
        assert_eq!((kept.actor, kept.summary, kept.before), (small.actor, small.summary, small.before));
        assert_eq!(kept.request_id.as_deref(), Some("id"));
        let few: Vec<String> = small.groups.into_iter().take(3).collect();
        assert_eq!(bounded_groups(few.clone()), few);
    }
}
