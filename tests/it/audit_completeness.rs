//! Completeness: a randomized sequence of changes — deploys, scales, routing, invalid
//! requests, anonymous (denied) requests, and changes made with kube-rs directly behind the
//! console's back — leaves exactly one audit entry per attempt, with the right outcome and
//! actor, and the hash chain verifies. `SIGNALBOX_TEST_SEED` replays a sequence.
use crate::support;

use std::time::Duration;

use kube::api::{Patch, PatchParams};
use reqwest::StatusCode;
use serde_json::{Value, json};
use signalbox::cluster::Kind;
use support::console::Console;
use support::{TestNamespace, eventually};

const ATTEMPTS: usize = 200;
const USERS: [&str; 3] = ["alice", "bob", "carol"];
/// The field manager of the out-of-band changes (what `kubectl scale` would record).
const EXTERNAL_MANAGER: &str = "kubectl-scale";

/// A small deterministic generator (xorshift), so a failing sequence can be replayed.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % sides
    }
}

/// What one attempt through the API must leave in the log.
#[derive(Debug, Clone, PartialEq)]
struct Expected {
    actor: String,
    action_prefix: &'static str,
    outcome: &'static str,
}

struct Run<'a> {
    console: &'a Console,
    dice: Dice,
    expected: Vec<Expected>,
    external: usize,
}

impl Run<'_> {
    /// Sends one API request as `user` (None: no identity header, so anonymous) and checks the status.
    async fn send(&mut self, user: Option<&str>, path: &str, body: Value, status: StatusCode, expected: Expected) {
        let mut request = self.console.http.put(self.console.api(path)).json(&body);
        if let Some(user) = user {
            request = request.header("x-forwarded-user", user);
        }
        let response = request.send().await.unwrap();
        let got = response.status();
        let text = response.text().await.unwrap_or_default();
        assert_eq!(got, status, "{path} {body} as {user:?}: {text}");
        self.expected.push(expected);
    }

    fn user(&mut self) -> &'static str {
        USERS[self.dice.roll(USERS.len() as u64) as usize]
    }

    async fn deploy(&mut self) {
        let user = self.user();
        let workload = ["recommendation-v2", "recommendation-v3", "preference"][self.dice.roll(3) as usize];
        let expected = Expected { actor: user.into(), action_prefix: "workload.", outcome: "applied" };
        self.send(Some(user), &format!("/workloads/{workload}"), json!({}), StatusCode::OK, expected).await;
    }

    async fn scale(&mut self) {
        let user = self.user();
        let replicas = 1 + self.dice.roll(3);
        let expected = Expected { actor: user.into(), action_prefix: "workload.", outcome: "applied" };
        let body = json!({"replicas": replicas});
        self.send(Some(user), "/workloads/recommendation-v2", body, StatusCode::OK, expected).await;
    }

    async fn route(&mut self, valid: bool) {
        let user = self.user();
        let v1 = self.dice.roll(101);
        let v2 = if valid { 100 - v1 } else { 100 - v1 + 1 };
        let body = json!({"subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}},
                          "rules": [{"route": {"version-v1": v1, "version-v2": v2}}]});
        let (status, outcome) =
            if valid { (StatusCode::OK, "applied") } else { (StatusCode::UNPROCESSABLE_ENTITY, "failed") };
        let expected = Expected { actor: user.into(), action_prefix: "route.", outcome };
        self.send(Some(user), "/routes/recommendation", body, status, expected).await;
    }

    async fn anonymous(&mut self) {
        let expected = Expected { actor: "anonymous".into(), action_prefix: "workload.", outcome: "denied" };
        self.send(None, "/workloads/recommendation-v2", json!({"replicas": 2}), StatusCode::UNAUTHORIZED, expected)
            .await;
    }

    /// Scales recommendation-v1 directly, to a count signalbox never sets, so it is a change.
    async fn external(&mut self, ns: &TestNamespace) {
        self.external += 1;
        let deployments = ns.objects(Kind::Deployment);
        let params = PatchParams { field_manager: Some(EXTERNAL_MANAGER.into()), ..PatchParams::default() };
        let patch = json!({"spec": {"replicas": 10 + self.external}});
        deployments.patch("recommendation-v1", &params, &Patch::Merge(&patch)).await.unwrap();
        // The watcher needs a moment; consecutive outside changes must not coalesce.
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn every_attempt_leaves_exactly_one_entry_and_the_chain_verifies() {
    let seed = std::env::var("SIGNALBOX_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| jiff::Timestamp::now().as_nanosecond() as u64 | 1);
    println!("SIGNALBOX_TEST_SEED={seed}");
    let ns = TestNamespace::new("complete").await;
    let console =
        Console::start_with(&ns.name, |config| config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()]).await;
    let mut run = Run { console: &console, dice: Dice(seed), expected: Vec::new(), external: 0 };
    for workload in ["recommendation-v1", "recommendation-v2"] {
        let expected = Expected { actor: "alice".into(), action_prefix: "workload.", outcome: "applied" };
        run.send(Some("alice"), &format!("/workloads/{workload}"), json!({}), StatusCode::OK, expected).await;
    }
    for _ in 0..ATTEMPTS {
        match run.dice.roll(6) {
            0 => run.deploy().await,
            1 => run.scale().await,
            2 => run.route(true).await,
            3 => run.route(false).await,
            4 => run.anonymous().await,
            _ => run.external(&ns).await,
        }
    }
    let (expected, external) = (run.expected.clone(), run.external);

    let waited = std::time::Instant::now();
    println!("attempts done; {external} external");
    let entries = eventually(Duration::from_secs(15), "every external change audited", || async {
        let entries = console.audit().await;
        let outside = entries.iter().filter(|e| e["source"] == "external").count();
        (outside >= external).then_some(entries)
    })
    .await;
    println!("waited {:?} for the external entries", waited.elapsed());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let entries = if entries.len() == console.audit().await.len() { entries } else { console.audit().await };

    let (outside, ours): (Vec<&Value>, Vec<&Value>) = entries.iter().rev().partition(|e| e["source"] == "external");
    assert_eq!(outside.len(), external, "one external entry per outside change: {outside:#?}");
    for entry in &outside {
        assert_eq!(
            (entry["actor"].as_str(), entry["kind"].as_str(), entry["outcome"].as_str()),
            (
                Some(format!("field manager {EXTERNAL_MANAGER} (unverified)").as_str()),
                Some("Deployment"),
                Some("applied")
            ),
            "{entry}"
        );
    }
    assert_eq!(ours.len(), expected.len(), "one entry per API attempt");
    for (index, (entry, expected)) in ours.iter().zip(&expected).enumerate() {
        let action = entry["action"].as_str().unwrap_or_default();
        assert!(
            entry["actor"] == expected.actor.as_str()
                && entry["outcome"] == expected.outcome
                && action.starts_with(expected.action_prefix),
            "attempt {index}: expected {expected:?}, got {entry}"
        );
        assert_eq!(entry["source"], "api");
    }
    let (_, chain) = console.get_json(&console.url("/api/v1/audit/verify")).await;
    assert_eq!(chain["first_mismatch"], Value::Null, "{chain}");
    assert_eq!(chain["records_checked"].as_u64(), Some((entries.len() + count_resolutions(&entries)) as u64));
    console.stop().await;
}

/// Entries that went through `pending` have a resolution record each: every applied or
/// failed change from the API that reached the apply step, but not refusals.
fn count_resolutions(entries: &[Value]) -> usize {
    entries.iter().filter(|e| e["source"] != "external" && e["outcome"] == "applied").count()
}
