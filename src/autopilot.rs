//! Canary auto-advance: a background task that judges every progressing canary with
//! auto-advance on, from Istio's metrics in Prometheus, and promotes or aborts it.
//!
//! - One replica decides per managed namespace at a time: it must hold that namespace's
//!   Lease ([`LEASE_NAME`]); the others try each round and take over once it lapses.
//! - The judgement is [`traffic::decide`] (pure); this task only measures and acts. A
//!   promotion from the last step (100%) finishes the canary, as Argo Rollouts completes.
//! - Actions go through the change path as `system:signalbox` (source `system`), with the
//!   verdict's reason — the measured values — in the audit summary.
//! - How long a canary has been healthy is kept in memory by the leader: a new leader (or a
//!   restart) starts the dwell again, so a dwell is always observed, never assumed.
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::change::canary as canary_change;
use crate::change::reads::Reads;
use crate::change::rollout::{Dwell, Rollouts, Step};
use crate::cluster::{Cluster, LeaderLease};
use crate::istio::VirtualService;
use crate::policy::RoutingPolicy;
use crate::policy::canary::{ANNOTATION, Canary};
use crate::traffic::{self, Prometheus, StepReach, Verdict};

/// The Lease, in each managed namespace, whose holder runs auto-advance there.
pub const LEASE_NAME: &str = "signalbox-canary-analysis";

/// A running auto-advance task.
pub struct Autopilot {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Autopilot {
    /// Starts judging the canaries of the managed namespaces (as they are at each round)
    /// every `interval`, as `holder` (this replica's identity in the Leases).
    pub fn start(
        cluster: &Cluster,
        rollouts: Rollouts,
        prometheus: Arc<Prometheus>,
        interval: Duration,
        holder: &str,
    ) -> Self {
        // A leader that stops renewing is replaced after three missed rounds (at least 15 s,
        // client-go's default), so a slow Prometheus round does not hand the Lease over.
        let lease_duration = (interval * 3).max(Duration::from_secs(15));
        let (stop, stopped) = watch::channel(false);
        let reads = Reads::new(cluster.clone());
        let pilot = Pilot {
            cluster: cluster.clone(),
            reads,
            rollouts,
            prometheus,
            holder: holder.to_owned(),
            lease_duration,
            leases: HashMap::new(),
            progress: HashMap::new(),
        };
        let task = tokio::spawn(pilot.run(interval, stopped));
        Self { stop, task }
    }

    /// Stops after the current round and gives up the Leases this replica holds.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// How long the autopilot waits for every proxy to have a step before judging it anyway
/// (saying so in the verdict).
pub const STEP_REACH_BOUND: Duration = Duration::from_secs(60);

/// One canary step as the leader saw it: since when, whether it was judged yet, and how
/// long it has been healthy.
#[derive(Clone, Debug, PartialEq)]
struct Progress {
    canary: String,
    step: usize,
    seen: Timestamp,
    /// When every proxy was first known to have the step.
    reached: Option<Timestamp>,
    judged: bool,
    healthy_since: Option<Timestamp>,
}

struct Pilot {
    cluster: Cluster,
    reads: Reads,
    rollouts: Rollouts,
    prometheus: Arc<Prometheus>,
    holder: String,
    lease_duration: Duration,
    /// The Leases of the namespaces with an auto-advancing canary, taken when one is seen.
    leases: HashMap<String, LeaderLease>,
    /// By (namespace, host).
    progress: HashMap<(String, String), Progress>,
}

impl Pilot {
    async fn run(mut self, interval: Duration, mut stopped: watch::Receiver<bool>) {
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => self.round().await,
                _ = stopped.changed() => break,
            }
        }
        for (namespace, lease) in &self.leases {
            if let Err(error) = lease.release().await {
                tracing::warn!(%namespace, %error, "could not release the canary analysis Lease");
            }
        }
    }

    /// One round over the managed namespaces as they are now. Only a namespace with an
    /// auto-advancing canary costs a Lease request: at 1,000 namespaces a round is a
    /// look at the caches, not 1,000 writes.
    async fn round(&mut self) {
        let namespaces = self.cluster.caches.managed.names();
        self.release_left(&namespaces).await;
        for namespace in namespaces.iter() {
            let canaries = self.automatic_canaries(namespace);
            if canaries.is_empty() {
                continue;
            }
            let lease = self.leases.entry(namespace.clone()).or_insert_with(|| {
                LeaderLease::new(self.cluster.client.clone(), namespace, LEASE_NAME, &self.holder, self.lease_duration)
            });
            match lease.try_lead().await {
                Ok(true) => {}
                Ok(false) => {
                    // Another replica decides; what we knew about dwell times is stale.
                    self.progress.retain(|(ns, _), _| ns != namespace);
                    continue;
                }
                Err(error) => {
                    tracing::warn!(%namespace, %error, "canary analysis Lease unavailable; not deciding this round");
                    continue;
                }
            }
            for (host, canary, policy) in canaries {
                self.judge(namespace, &host, &canary, &policy).await;
            }
        }
    }

    /// Gives up the Leases of namespaces no longer managed.
    async fn release_left(&mut self, managed: &[String]) {
        let left: Vec<String> = self.leases.keys().filter(|ns| !managed.contains(ns)).cloned().collect();
        for namespace in left {
            if let Some(lease) = self.leases.remove(&namespace)
                && let Err(error) = lease.release().await
            {
                tracing::warn!(%namespace, %error, "could not release the canary analysis Lease");
            }
        }
    }

    /// Progressing canaries with auto-advance on, from the caches.
    fn automatic_canaries(&self, namespace: &str) -> Vec<(String, Canary, RoutingPolicy)> {
        let Some(cache) = self.cluster.caches.namespace(namespace) else { return Vec::new() };
        let virtual_services = cache.virtual_services.state();
        // Only VirtualServices carrying a canary are worth reading the routing of.
        let with_canary = |vs: &&Arc<VirtualService>| {
            vs.metadata.annotations.as_ref().is_some_and(|annotations| annotations.contains_key(ANNOTATION))
        };
        // The hosts they route (in this namespace), not their names: a canary can run on a
        // VirtualService named unlike its host.
        let mut hosts: Vec<String> = virtual_services
            .iter()
            .filter(with_canary)
            .flat_map(|vs| vs.spec.hosts.clone().unwrap_or_default())
            .filter_map(|name| {
                let short = name.split('.').next()?.to_owned();
                crate::policy::refers_to_host(&name, &short, Some(namespace)).then_some(short)
            })
            .collect();
        // And the Services HTTPRoutes carrying a canary attach to.
        let http_routes = cache.http_routes.state();
        let routes_with_canary = http_routes
            .iter()
            .filter(|route| route.metadata.annotations.as_ref().is_some_and(|a| a.contains_key(ANNOTATION)));
        let services = routes_with_canary.flat_map(|route| route.spec.parent_refs.clone().unwrap_or_default());
        hosts.extend(services.filter(|parent| parent.kind.as_deref() == Some("Service")).map(|parent| parent.name));
        hosts.sort();
        hosts.dedup();
        hosts
            .into_iter()
            .filter_map(|host| {
                let live = self.reads.cached_routing(namespace, &host);
                let canary = canary_change::current(&live).filter(Canary::is_automatic)?;
                let policy = live.policy(&host).ok()?;
                Some((host, canary, policy))
            })
            .collect()
    }

    async fn judge(&mut self, namespace: &str, host: &str, canary: &Canary, policy: &RoutingPolicy) {
        let Some(thresholds) = &canary.analysis else { return };
        let Some(version) = policy.subset(&canary.canary).and_then(|s| s.labels.get("version")).cloned() else {
            tracing::warn!(%namespace, %host, subset = %canary.canary, "canary subset has no version label to measure");
            return;
        };
        let key = (namespace.to_owned(), host.to_owned());
        let now = Timestamp::now();
        let same_step = |p: &&Progress| p.canary == canary.canary && p.step == canary.step;
        let known = self.progress.get(&key).filter(same_step).cloned();
        let progress = known.unwrap_or(Progress {
            canary: canary.canary.clone(),
            step: canary.step,
            seen: now,
            reached: None,
            judged: false,
            healthy_since: None,
        });
        // The host's last change this signalbox followed: the step, when this replica made it.
        // (Known limit: after a step another replica made, this is an older change's reach.)
        let reach = match progress.reached {
            Some(at) => StepReach::Reached(at),
            None => self.rollouts.step_reach(namespace, host).await,
        };
        let progress = match reach {
            StepReach::Reached(at) => Progress { reached: Some(at), ..progress },
            _ => progress,
        };
        let judged = match traffic::judged_from(&reach, progress.seen, now, STEP_REACH_BOUND, thresholds.window) {
            Ok(judged) => judged,
            Err(wait) => {
                tracing::debug!(%namespace, %host, reason = %wait.reason(), "canary analysis: waiting");
                self.progress.insert(key, progress);
                return;
            }
        };
        // The first judgement of a step counts its dwell from when it took effect: the window
        // judged lies wholly after that.
        let since = if progress.judged { progress.healthy_since } else { Some(judged.from) };
        let observed = self.prometheus.observe(namespace, host, thresholds.window).await;
        let mut decision =
            traffic::decide(thresholds, observed.as_ref().map(|report| report.version(&version)), since, now);
        if let Some(note) = &judged.note {
            decision.verdict = with_note(decision.verdict, note);
        }
        let progress = Progress { judged: true, healthy_since: decision.healthy_since, ..progress };
        let dwell = progress.healthy_since.map(|since| Dwell {
            step: canary.step,
            held: u64::try_from(now.as_second() - since.as_second()).unwrap_or(0),
            of: thresholds.dwell.as_secs(),
        });
        self.rollouts.note_dwell(namespace, host, dwell);
        self.progress.insert(key, progress);
        match decision.verdict {
            Verdict::Wait(reason) => tracing::debug!(%namespace, %host, %reason, "canary analysis: waiting"),
            Verdict::Promote(reason) => self.act(namespace, host, next_step(canary), &reason).await,
            Verdict::Abort(reason) => self.act(namespace, host, Step::Abort, &reason).await,
        }
    }

    async fn act(&mut self, namespace: &str, host: &str, step: Step, reason: &str) {
        let action = step.action();
        match self.rollouts.run_automatic(namespace, host, step, reason).await {
            Ok((next, audit_id)) => {
                tracing::info!(%namespace, %host, %action, %reason, audit_id, weight = next.weight(), "canary analysis acted");
            }
            // Someone moved the canary meanwhile (409) or the cluster refused: the next
            // round judges the canary as it is then.
            Err(error) => tracing::warn!(%namespace, %host, %action, %error, "canary analysis could not act"),
        }
        self.progress.remove(&(namespace.to_owned(), host.to_owned()));
    }
}

/// The verdict with `note` added to its reason (which becomes the audit summary).
fn with_note(verdict: Verdict, note: &str) -> Verdict {
    match verdict {
        Verdict::Promote(reason) => Verdict::Promote(format!("{reason}; {note}")),
        Verdict::Abort(reason) => Verdict::Abort(format!("{reason}; {note}")),
        Verdict::Wait(reason) => Verdict::Wait(format!("{reason}; {note}")),
    }
}

/// Promote to the next step, or finish when the canary already takes all the traffic;
/// only from the step that was judged. An automatic finish keeps the old version running:
/// scaling it down stays a person's call.
fn next_step(canary: &Canary) -> Step {
    if canary.at_last_step() {
        Step::Finish { scale_down: false }
    } else {
        Step::Promote { full: false, from: Some(canary.step) }
    }
}

/// This replica's name in the Leases: the pod name when Kubernetes gives one (`POD_NAME`
/// from the downward API), else host and process; a random suffix keeps two consoles in
/// one process (tests) apart.
pub fn holder_identity() -> String {
    let base = std::env::var("POD_NAME").ok().filter(|name| !name.is_empty()).unwrap_or_else(|| {
        let host = whoami::fallible::hostname().unwrap_or_else(|_| "signalbox".into());
        format!("{host}-{}", std::process::id())
    });
    format!("{base}-{}", &uuid::Uuid::new_v4().simple().to_string()[..6])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::canary::CanaryState;
    use crate::traffic::Thresholds;

    fn canary(steps: Vec<u32>, step: usize) -> Canary {
        Canary {
            stable: "version-v1".into(),
            canary: "version-v2".into(),
            steps,
            step,
            state: CanaryState::Progressing,
            analysis: Some(Thresholds::default()),
        }
    }

    #[test]
    fn a_promotion_from_the_judged_step_or_a_finish_at_100() {
        assert!(matches!(next_step(&canary(vec![10, 25, 100], 1)), Step::Promote { full: false, from: Some(1) }));
        assert!(matches!(next_step(&canary(vec![10, 25, 100], 2)), Step::Finish { scale_down: false }));
    }

    #[test]
    fn holders_differ_between_consoles_of_one_process() {
        assert_ne!(holder_identity(), holder_identity());
    }
}
