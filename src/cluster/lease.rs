//! Leader election on a `coordination.k8s.io/v1` Lease, so that of several signalbox
//! replicas exactly one runs a background decision (canary auto-advance) at a time.
//!
//! The protocol is client-go's: the holder renews `renewTime` every round; a contender takes
//! the Lease over only once `renewTime + leaseDurationSeconds` has passed. Every write is a
//! create or a replace carrying the resourceVersion that was read, so when two replicas race
//! the API server lets exactly one win (the other gets 409 and stays a follower).
//! Hand-written rather than a crate: the few leader-election crates for kube-rs trail its
//! releases, and this is one read and one conditional write.
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
// k8s-openapi's own jiff (MicroTime wraps its Timestamp), which need not be the crate's.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use kube::{Client, Error};

/// One replica's claim on a named Lease.
#[derive(Clone)]
pub struct LeaderLease {
    api: Api<Lease>,
    name: String,
    holder: String,
    duration: Duration,
}

impl LeaderLease {
    /// `holder` identifies this replica (its pod name, or host and process); `duration` is
    /// how long a silent holder keeps the Lease (renew well within it).
    pub fn new(client: Client, namespace: &str, name: &str, holder: &str, duration: Duration) -> Self {
        Self { api: Api::namespaced(client, namespace), name: name.to_owned(), holder: holder.to_owned(), duration }
    }

    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Acquires or renews the Lease; true when this replica leads until at least now +
    /// `duration`. Losing a race is `Ok(false)`, not an error.
    pub async fn try_lead(&self) -> Result<bool, Error> {
        let now = Timestamp::now();
        let written = match self.api.get_opt(&self.name).await? {
            None => self.api.create(&PostParams::default(), &self.fresh(now)).await.map(drop),
            Some(lease) => match claim(&lease, &self.holder, now, self.duration) {
                Some(claimed) => self.api.replace(&self.name, &PostParams::default(), &claimed).await.map(drop),
                None => return Ok(false),
            },
        };
        match written {
            Ok(()) => Ok(true),
            Err(Error::Api(status)) if status.code == 409 => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// Gives the Lease up (at shutdown), so that another replica need not wait it out.
    pub async fn release(&self) -> Result<(), Error> {
        let Some(mut lease) = self.api.get_opt(&self.name).await? else { return Ok(()) };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.holder.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        match self.api.replace(&self.name, &PostParams::default(), &lease).await {
            Ok(_) => Ok(()),
            Err(Error::Api(status)) if status.code == 409 => Ok(()),
            Err(other) => Err(other),
        }
    }

    fn fresh(&self, now: Timestamp) -> Lease {
        Lease {
            metadata: ObjectMeta { name: Some(self.name.clone()), ..ObjectMeta::default() },
            spec: Some(held_by(&self.holder, now, self.duration, 0)),
        }
    }
}

/// The Lease as `holder` would write it now, or `None` when another holder's claim is still
/// valid. Keeps the read resourceVersion, which makes the replace conditional.
fn claim(lease: &Lease, holder: &str, now: Timestamp, duration: Duration) -> Option<Lease> {
    let spec = lease.spec.clone().unwrap_or_default();
    let current = spec.holder_identity.as_deref().filter(|h| !h.is_empty());
    let transitions = spec.lease_transitions.unwrap_or(0);
    let spec = match current {
        Some(current) if current == holder => {
            LeaseSpec { renew_time: Some(MicroTime(now)), lease_duration_seconds: Some(seconds(duration)), ..spec }
        }
        Some(_) if !expired(&spec, now) => return None,
        _ => held_by(holder, now, duration, transitions + 1),
    };
    Some(Lease { metadata: lease.metadata.clone(), spec: Some(spec) })
}

fn held_by(holder: &str, now: Timestamp, duration: Duration, transitions: i32) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(holder.to_owned()),
        lease_duration_seconds: Some(seconds(duration)),
        acquire_time: Some(MicroTime(now)),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    }
}

/// Whether the holder has failed to renew within its own stated duration.
fn expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    let Some(MicroTime(renewed)) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else { return true };
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(0)));
    renewed.checked_add(duration).map_or(true, |until| until < now)
}

fn seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs().max(1)).unwrap_or(i32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DURATION: Duration = Duration::from_secs(15);

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    fn lease(holder: Option<&str>, renewed: i64) -> Lease {
        Lease {
            metadata: ObjectMeta { name: Some("l".into()), resource_version: Some("7".into()), ..Default::default() },
            spec: Some(LeaseSpec {
                holder_identity: holder.map(str::to_owned),
                lease_duration_seconds: Some(15),
                renew_time: Some(MicroTime(at(renewed))),
                lease_transitions: Some(2),
                ..Default::default()
            }),
        }
    }

    fn holder_of(lease: &Lease) -> Option<String> {
        lease.spec.as_ref()?.holder_identity.clone()
    }

    #[test]
    fn the_holder_renews_and_keeps_the_resource_version() {
        let renewed = claim(&lease(Some("a"), 100), "a", at(110), DURATION).unwrap();
        let spec = renewed.spec.as_ref().unwrap();
        assert_eq!(spec.renew_time, Some(MicroTime(at(110))));
        assert_eq!(spec.lease_transitions, Some(2), "a renewal is not a transition");
        assert_eq!(renewed.metadata.resource_version.as_deref(), Some("7"), "the replace stays conditional");
    }

    #[test]
    fn another_holder_is_respected_until_its_lease_runs_out() {
        assert!(claim(&lease(Some("a"), 100), "b", at(115), DURATION).is_none(), "at the boundary a still holds");
        let taken = claim(&lease(Some("a"), 100), "b", at(116), DURATION).unwrap();
        assert_eq!(holder_of(&taken).as_deref(), Some("b"));
        assert_eq!(taken.spec.unwrap().lease_transitions, Some(3));
    }

    #[test]
    fn a_released_or_empty_lease_is_free() {
        assert_eq!(holder_of(&claim(&lease(None, 100), "b", at(101), DURATION).unwrap()).as_deref(), Some("b"));
        assert_eq!(holder_of(&claim(&lease(Some(""), 100), "b", at(101), DURATION).unwrap()).as_deref(), Some("b"));
        let no_spec = Lease { metadata: ObjectMeta::default(), spec: None };
        assert_eq!(holder_of(&claim(&no_spec, "b", at(0), DURATION).unwrap()).as_deref(), Some("b"));
    }
}
