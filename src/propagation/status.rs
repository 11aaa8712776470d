//! Whether the proxies have a change, judged from istiod's sync status (pure, no I/O).
//!
//! istiod keeps, per connected proxy and xDS type, the nonce of the last response it sent,
//! the nonce the proxy last ACKed, and the error of the proxy's last NACK
//! (`/debug/syncz`). A change has reached a proxy when, compared with a snapshot taken just
//! before the change was applied, istiod has sent that proxy new route configuration (RDS;
//! and clusters, CDS, when subsets changed) and the proxy ACKed exactly that response.
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

/// One xDS type's state for one proxy, as istiod reports it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct XdsState {
    pub sent: Option<String>,
    pub acked: Option<String>,
    /// The proxy's last NACK message; istiod clears it on the next ACK.
    pub error: Option<String>,
}

/// One proxy in istiod's sync status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProxySync {
    /// `<pod>.<namespace>`, as istioctl names proxies.
    pub name: String,
    pub routes: XdsState,
    pub clusters: XdsState,
}

impl ProxySync {
    /// Whether the proxy ACKed the last route and cluster configuration istiod sent it.
    pub fn has_what_was_sent(&self) -> bool {
        let acked = |state: &XdsState| state.sent == state.acked && state.error.is_none();
        acked(&self.routes) && acked(&self.clusters)
    }
}

/// Every proxy of a namespace, by istiod's proxy id.
pub type Snapshot = BTreeMap<String, ProxySync>;

/// Where one proxy stands with one change.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncState {
    /// Sent after the change and ACKed.
    Synced,
    /// Sent after the change, not ACKed (yet).
    Stale,
    /// Nothing sent since the change.
    NotSent,
    /// The proxy rejected (NACKed) what it was sent.
    Error,
}

impl SyncState {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::Synced => "synced",
            SyncState::Stale => "stale",
            SyncState::NotSent => "not-sent",
            SyncState::Error => "error",
        }
    }

    /// The worse of two states, for a proxy judged on routes and clusters.
    fn worst(self, other: SyncState) -> SyncState {
        fn rank(state: SyncState) -> u8 {
            match state {
                SyncState::Synced => 0,
                SyncState::NotSent => 1,
                SyncState::Stale => 2,
                SyncState::Error => 3,
            }
        }
        if rank(other) > rank(self) { other } else { self }
    }
}

/// One proxy's verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProxyReport {
    pub name: String,
    pub rds: SyncState,
    /// Judged only when the change touched subsets (clusters).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cds: Option<SyncState>,
    /// The proxy's NACK message, when it rejected the change.
    pub error: Option<String>,
}

impl ProxyReport {
    pub fn state(&self) -> SyncState {
        self.cds.map_or(self.rds, |cds| self.rds.worst(cds))
    }
}

/// Every in-scope proxy's verdict on a change.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub proxies: Vec<ProxyReport>,
    pub synced: usize,
    pub total: usize,
}

impl Report {
    /// Every proxy has the change (vacuously true with no proxies: see [`Report::total`]).
    pub fn complete(&self) -> bool {
        self.synced == self.total
    }

    /// No proxy can still get there on its own: each is synced or NACKed.
    pub fn settled(&self) -> bool {
        self.proxies.iter().all(|p| matches!(p.state(), SyncState::Synced | SyncState::Error))
    }

    /// The proxies that do not have the change, with why.
    pub fn lagging(&self) -> impl Iterator<Item = &ProxyReport> {
        self.proxies.iter().filter(|p| p.state() != SyncState::Synced)
    }
}

/// Judges `now` against `baseline` (taken just before the change was applied; None when
/// there was none, e.g. after a restart: then a proxy counts as synced when it ACKed the
/// last thing it was sent). `clusters_changed`: the change touched subsets, so CDS counts too.
pub fn judge(baseline: Option<&Snapshot>, now: &Snapshot, clusters_changed: bool) -> Report {
    let proxies: Vec<ProxyReport> = now
        .iter()
        .map(|(id, proxy)| {
            let before = baseline.map(|b| b.get(id));
            let rds = judge_type(before.map(|b| b.map(|p| &p.routes)), &proxy.routes);
            let cds = clusters_changed.then(|| judge_type(before.map(|b| b.map(|p| &p.clusters)), &proxy.clusters));
            let error = [&proxy.routes, &proxy.clusters].into_iter().find_map(|state| state.error.clone());
            ProxyReport { name: proxy.name.clone(), rds, cds, error }
        })
        .collect();
    let synced = proxies.iter().filter(|p| p.state() == SyncState::Synced).count();
    Report { total: proxies.len(), synced, proxies }
}

/// Like [`judge`], remembering in `reached` the proxies that had the change: a proxy that
/// ACKed a response sent after the change keeps it (later pushes carry it too), so a newer
/// push still on its way, say for another namespace's change, does not make it stale again.
pub fn judge_following(
    baseline: Option<&Snapshot>,
    now: &Snapshot,
    clusters_changed: bool,
    reached: &mut BTreeSet<String>,
) -> Report {
    let mut report = judge(baseline, now, clusters_changed);
    for (id, proxy) in now.keys().zip(report.proxies.iter_mut()) {
        if reached.contains(id) {
            proxy.rds = SyncState::Synced;
            proxy.cds = proxy.cds.map(|_| SyncState::Synced);
            proxy.error = None;
        } else if proxy.state() == SyncState::Synced {
            reached.insert(id.clone());
        }
    }
    report.synced = report.proxies.iter().filter(|p| p.state() == SyncState::Synced).count();
    report
}

/// `before`: None without a baseline; Some(None) for a proxy that connected after it. A NACK
/// counts only for what was sent since: an older rejection says nothing about this change.
fn judge_type(before: Option<Option<&XdsState>>, now: &XdsState) -> SyncState {
    let sent_since = match before {
        None | Some(None) => now.sent.is_some(),
        Some(Some(before)) => now.sent.is_some() && before.sent != now.sent,
    };
    if !sent_since {
        SyncState::NotSent
    } else if now.acked == now.sent {
        SyncState::Synced
    } else if now.error.is_some() {
        SyncState::Error
    } else {
        SyncState::Stale
    }
}

/// The report in words: "reached 12/12 proxies", "reaching proxies: 9/12; stale:
/// customer-1.tutorial; rejected by preference-2.tutorial: ...", "no proxies connected".
pub fn describe(report: &Report) -> String {
    if report.total == 0 {
        return "no proxies connected".into();
    }
    let mut text = if report.complete() {
        format!("reached {}/{} proxies", report.synced, report.total)
    } else {
        format!("reaching proxies: {}/{}", report.synced, report.total)
    };
    for (state, label) in [(SyncState::Stale, "stale"), (SyncState::NotSent, "not sent yet")] {
        let names: Vec<&str> = report.lagging().filter(|p| p.state() == state).map(|p| p.name.as_str()).collect();
        if !names.is_empty() {
            text.push_str(&format!("; {label}: {}", names.join(", ")));
        }
    }
    for proxy in report.lagging().filter(|p| p.state() == SyncState::Error) {
        let error = proxy.error.as_deref().unwrap_or("no message");
        text.push_str(&format!("; rejected by {}: {error}", proxy.name));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(sent: &str, acked: &str, error: Option<&str>) -> XdsState {
        let text = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        XdsState { sent: text(sent), acked: text(acked), error: error.map(String::from) }
    }

    fn proxy(name: &str, routes: XdsState) -> ProxySync {
        ProxySync { name: name.into(), routes, clusters: state("c1", "c1", None) }
    }

    fn snapshot(proxies: &[(&str, ProxySync)]) -> Snapshot {
        proxies.iter().map(|(id, p)| (id.to_string(), p.clone())).collect()
    }

    #[test]
    fn a_proxy_is_synced_only_when_it_acked_what_was_sent_after_the_change() {
        let baseline = snapshot(&[
            ("a", proxy("a.ns", state("n1", "n1", None))),
            ("b", proxy("b.ns", state("n1", "n1", None))),
            ("c", proxy("c.ns", state("n1", "n1", None))),
            ("d", proxy("d.ns", state("n1", "n1", None))),
        ]);
        let now = snapshot(&[
            ("a", proxy("a.ns", state("n2", "n2", None))),
            ("b", proxy("b.ns", state("n2", "n1", None))),
            ("c", proxy("c.ns", state("n1", "n1", None))),
            ("d", proxy("d.ns", state("n2", "n1", Some("bad route")))),
            ("e", proxy("e.ns", state("n7", "n7", None))),
        ]);
        let report = judge(Some(&baseline), &now, false);
        let states: Vec<(&str, SyncState)> = report.proxies.iter().map(|p| (p.name.as_str(), p.state())).collect();
        assert_eq!(
            states,
            vec![
                ("a.ns", SyncState::Synced),
                ("b.ns", SyncState::Stale),
                ("c.ns", SyncState::NotSent),
                ("d.ns", SyncState::Error),
                ("e.ns", SyncState::Synced),
            ]
        );
        assert_eq!((report.synced, report.total), (2, 5));
        assert!(!report.complete() && !report.settled());
        assert_eq!(
            describe(&report),
            "reaching proxies: 2/5; stale: b.ns; not sent yet: c.ns; rejected by d.ns: bad route"
        );
    }

    #[test]
    fn an_earlier_rejection_is_not_this_changes() {
        let baseline = snapshot(&[("a", proxy("a.ns", state("n1", "n0", Some("bad route"))))]);
        let unchanged = snapshot(&[("a", proxy("a.ns", state("n1", "n0", Some("bad route"))))]);
        assert_eq!(judge(Some(&baseline), &unchanged, false).proxies[0].state(), SyncState::NotSent);
        let rejected_again = snapshot(&[("a", proxy("a.ns", state("n2", "n0", Some("bad route 2"))))]);
        let report = judge(Some(&baseline), &rejected_again, false);
        assert_eq!(report.proxies[0].state(), SyncState::Error);
        assert!(report.settled());
    }

    #[test]
    fn a_proxy_that_had_the_change_keeps_it_through_later_pushes() {
        let baseline = snapshot(&[("a", proxy("a.ns", state("n1", "n1", None)))]);
        let mut reached = BTreeSet::new();
        let synced = snapshot(&[("a", proxy("a.ns", state("n2", "n2", None)))]);
        assert!(judge_following(Some(&baseline), &synced, false, &mut reached).complete());
        let next_push_in_flight = snapshot(&[("a", proxy("a.ns", state("n3", "n2", None)))]);
        assert_eq!(judge(Some(&baseline), &next_push_in_flight, false).proxies[0].state(), SyncState::Stale);
        let report = judge_following(Some(&baseline), &next_push_in_flight, false, &mut reached);
        assert!(report.complete(), "{report:?}");
    }

    #[test]
    fn subsets_changes_wait_for_clusters_too() {
        let baseline = snapshot(&[("a", proxy("a.ns", state("n1", "n1", None)))]);
        let mut now = snapshot(&[("a", proxy("a.ns", state("n2", "n2", None)))]);
        assert!(judge(Some(&baseline), &now, false).complete());
        let report = judge(Some(&baseline), &now, true);
        assert_eq!(report.proxies[0].cds, Some(SyncState::NotSent));
        assert!(!report.complete());
        now.get_mut("a").unwrap().clusters = state("c2", "c2", None);
        assert!(judge(Some(&baseline), &now, true).complete());
    }

    #[test]
    fn without_a_baseline_the_last_ack_counts() {
        let now =
            snapshot(&[("a", proxy("a.ns", state("n2", "n2", None))), ("b", proxy("b.ns", state("n3", "n2", None)))]);
        let report = judge(None, &now, false);
        assert_eq!((report.synced, report.total), (1, 2));
    }

    #[test]
    fn nothing_connected_is_said_plainly() {
        let report = judge(Some(&Snapshot::new()), &Snapshot::new(), true);
        assert_eq!(describe(&report), "no proxies connected");
        let all = judge(None, &snapshot(&[("a", proxy("a.ns", state("n2", "n2", None)))]), false);
        assert_eq!(describe(&all), "reached 1/1 proxies");
        assert!(all.settled());
    }
}
