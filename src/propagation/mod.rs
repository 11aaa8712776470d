//! When the proxies have a change: "reached 12/12 proxies in 0.4 s", or which proxy is
//! stale or rejected it.
//!
//! Just before a routing change is applied, the change path takes a snapshot of istiod's
//! sync status for the namespace ([`Propagation::baseline`]); once applied, the change is
//! tracked ([`Propagation::track`]): a task reads the sync status until every proxy of the
//! namespace has ACKed what istiod sent it after the change (or rejected it, or a minute
//! passed), remembers when that happened, and hands the result to the audit log as a
//! follow-up record. Pages and the API read the latest change's state per host.
pub mod istiod;
mod status;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

pub use istiod::{Istiod, IstiodUnreachable};
pub use status::{ProxyReport, ProxySync, Report, Snapshot, SyncState, XdsState, describe, judge, judge_following};

/// How often a tracked change's state is read while it is on its way.
const POLL_EVERY: Duration = Duration::from_millis(100);
/// How long a change is followed before its result is recorded as it stands.
const FOLLOW_FOR: Duration = Duration::from_secs(60);
/// The baseline read must not hold a change up when istiod does not answer.
const BASELINE_TIMEOUT: Duration = Duration::from_millis(500);

/// The sync status just before a change, or why there is none.
#[derive(Clone, Debug)]
pub struct Baseline {
    namespace: String,
    snapshot: Result<Snapshot, String>,
    /// The change leaves every routing object's spec as it was (a canary's pause, resume,
    /// or finish at 100%: its annotation only). istiod sends nothing for it — it pushes an
    /// Istio object's change only when its spec (or an `istio.io` label or annotation)
    /// changed — so a proxy has it when it has what it was last sent.
    unchanged: bool,
}

impl Baseline {
    /// For a change that leaves the routing the proxies get as it was: nothing to wait for.
    pub fn unchanged(namespace: &str) -> Self {
        Baseline {
            namespace: namespace.to_owned(),
            snapshot: Err("the routing did not change".into()),
            unchanged: true,
        }
    }
}

/// What the propagation of a host's last change looks like now.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncView {
    #[serde(flatten)]
    pub report: Report,
    /// The audit entry of the change followed; None: no change followed since start.
    pub audit_id: Option<i64>,
    /// Seconds from the apply until every proxy had the change, once they all had.
    pub reached_in_seconds: Option<f64>,
    /// When every proxy had the change (seen by the poll that found it so).
    pub reached_at: Option<jiff::Timestamp>,
    /// Why there is no report: istiod not configured or unreachable.
    pub unavailable: Option<String>,
    /// The state in words, for pages and the audit log.
    pub summary: String,
    /// No more movement expected: every proxy synced or rejected, or istiod unavailable.
    pub settled: bool,
}

struct Tracked {
    audit_id: i64,
    applied: Instant,
    applied_at: jiff::Timestamp,
    baseline: Option<Snapshot>,
    clusters_changed: bool,
    /// See [`Baseline::unchanged`].
    unchanged: bool,
    reached_after: Option<Duration>,
    /// The proxies seen to have the change (they keep it).
    reached: std::collections::BTreeSet<String>,
}

/// Follows routing changes to the proxies. Cheap to clone.
#[derive(Clone, Default)]
pub struct Propagation {
    istiod: Option<Istiod>,
    tracked: Arc<Mutex<HashMap<(String, String), Tracked>>>,
}

/// Where a followed change's final result goes (the audit log's follow-up record).
pub type OnSettled = Box<dyn FnOnce(i64, SyncView) -> futures::future::BoxFuture<'static, ()> + Send>;

impl Propagation {
    pub fn new(istiod: Option<Istiod>) -> Self {
        Self { istiod, tracked: Default::default() }
    }

    pub fn istiod(&self) -> Option<&Istiod> {
        self.istiod.as_ref()
    }

    /// The namespace's sync status just before a change (bounded: a silent istiod must
    /// not hold the change up).
    pub async fn baseline(&self, namespace: &str) -> Baseline {
        let snapshot = match &self.istiod {
            None => Err("istiod is not configured (--istiod-url)".to_owned()),
            Some(istiod) => match tokio::time::timeout(BASELINE_TIMEOUT, istiod.snapshot(namespace)).await {
                Ok(read) => read.map_err(|e| e.to_string()),
                Err(_) => Err(format!("istiod at {} did not answer within {BASELINE_TIMEOUT:?}", istiod.url())),
            },
        };
        Baseline { namespace: namespace.to_owned(), snapshot, unchanged: false }
    }

    /// Follows the change `audit_id` to `host`'s proxies; `on_settled` gets its result once
    /// every proxy has it or rejected it, or after [`FOLLOW_FOR`].
    pub fn track(&self, host: &str, audit_id: i64, baseline: Baseline, clusters_changed: bool, on_settled: OnSettled) {
        let key = (baseline.namespace.clone(), host.to_owned());
        let tracked = Tracked {
            audit_id,
            applied: Instant::now(),
            applied_at: jiff::Timestamp::now(),
            baseline: baseline.snapshot.ok(),
            clusters_changed: clusters_changed && !baseline.unchanged,
            unchanged: baseline.unchanged,
            reached_after: None,
            reached: Default::default(),
        };
        self.lock().insert(key.clone(), tracked);
        let this = self.clone();
        tokio::spawn(async move {
            let deadline = Instant::now() + FOLLOW_FOR;
            let view = loop {
                let view = this.status(&key.0, &key.1).await;
                let superseded = view.audit_id != Some(audit_id);
                if view.settled || superseded || Instant::now() >= deadline {
                    break view;
                }
                tokio::time::sleep(POLL_EVERY).await;
            };
            on_settled(audit_id, view).await;
        });
    }

    /// The state of `host`'s last followed change now (or of the namespace's proxies, when
    /// no change was followed since start).
    pub async fn status(&self, namespace: &str, host: &str) -> SyncView {
        let Some(istiod) = &self.istiod else {
            return unavailable(None, "istiod is not configured (--istiod-url), so propagation is not known".into());
        };
        let key = (namespace.to_owned(), host.to_owned());
        let audit_id = self.lock().get(&key).map(|t| t.audit_id);
        let now = match istiod.snapshot(namespace).await {
            Ok(now) => now,
            Err(error) => return unavailable(audit_id, error.to_string()),
        };
        let mut tracked = self.lock();
        let Some(change) = tracked.get_mut(&key) else {
            return view(None, judge(None, &now, false), None);
        };
        let report = judge_following(change.baseline.as_ref(), &now, change.clusters_changed, &mut change.reached);
        if report.complete() && change.reached_after.is_none() {
            change.reached_after = Some(change.applied.elapsed());
        }
        let mut view = view(Some(change.audit_id), report, change.reached_after);
        view.reached_at = change.reached_after.filter(|_| view.report.complete()).and_then(|after| {
            let after = jiff::SignedDuration::try_from(after).ok()?;
            change.applied_at.checked_add(after).ok()
        });
        if change.unchanged && view.report.total > 0 {
            view.summary.push_str(" (the routing they get did not change: nothing new to send)");
        }
        view
    }

    /// Waits at most `within` until every proxy has `host`'s last change (or rejected it).
    pub async fn wait(&self, namespace: &str, host: &str, within: Duration) -> SyncView {
        let deadline = Instant::now() + within;
        loop {
            let view = self.status(namespace, host).await;
            if view.settled || Instant::now() >= deadline {
                return view;
            }
            tokio::time::sleep(POLL_EVERY.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Tracked>> {
        self.tracked.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn view(audit_id: Option<i64>, report: Report, reached_after: Option<Duration>) -> SyncView {
    let mut summary = describe(&report);
    if let Some(after) = reached_after.filter(|_| report.total > 0 && report.complete()) {
        summary.push_str(&format!(" in {:.1} s", after.as_secs_f64()));
    }
    let settled = report.settled();
    SyncView {
        reached_in_seconds: reached_after.filter(|_| report.total > 0).map(|d| d.as_secs_f64()),
        reached_at: None,
        report,
        audit_id,
        unavailable: None,
        summary,
        settled,
    }
}

fn unavailable(audit_id: Option<i64>, reason: String) -> SyncView {
    SyncView {
        report: Report::default(),
        audit_id,
        reached_in_seconds: None,
        reached_at: None,
        summary: format!("propagation unknown: {reason}"),
        unavailable: Some(reason),
        settled: true,
    }
}
