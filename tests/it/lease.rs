//! Leader election on a real Lease: one holder at a time, renewal, takeover after expiry,
//! release, and races decided by the API server's resourceVersion check.
use crate::support;

use std::time::Duration;

use signalbox::cluster::LeaderLease;
use support::TestNamespace;

const DURATION: Duration = Duration::from_secs(2);

fn contender(ns: &TestNamespace, holder: &str) -> LeaderLease {
    LeaderLease::new(ns.client.clone(), &ns.name, "analysis", holder, DURATION)
}

#[tokio::test]
async fn one_contender_leads_until_its_lease_runs_out_or_is_released() {
    let ns = TestNamespace::new("lease").await;
    let (a, b) = (contender(&ns, "a"), contender(&ns, "b"));
    assert!(a.try_lead().await.unwrap(), "a free Lease is taken");
    assert!(!b.try_lead().await.unwrap(), "a held Lease is respected");
    assert!(a.try_lead().await.unwrap(), "the holder renews");

    tokio::time::sleep(DURATION + Duration::from_secs(1)).await;
    assert!(b.try_lead().await.unwrap(), "a Lease not renewed within its duration is taken over");
    assert!(!a.try_lead().await.unwrap(), "the old holder is now a follower");

    b.release().await.unwrap();
    assert!(a.try_lead().await.unwrap(), "a released Lease is free at once");
}

#[tokio::test]
async fn racing_contenders_elect_exactly_one_leader() {
    let ns = TestNamespace::new("lease-race").await;
    let contenders: Vec<_> = (0..8).map(|i| contender(&ns, &format!("replica-{i}"))).collect();
    let race = || futures::future::join_all(contenders.iter().map(|c| c.try_lead()));

    let leaders = race().await.into_iter().filter(|won| *won.as_ref().unwrap()).count();
    assert_eq!(leaders, 1, "creating the Lease");

    tokio::time::sleep(DURATION + Duration::from_secs(1)).await;
    // Everyone sees an expired Lease; the conditional replace lets one of them through.
    let results = race().await;
    let leaders: Vec<_> = results.iter().enumerate().filter(|(_, won)| *won.as_ref().unwrap()).collect();
    assert_eq!(leaders.len(), 1, "taking over an expired Lease: {results:?}");
}
