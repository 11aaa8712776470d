//! Property tests: any valid generated policy validates cleanly, evaluates to shares summing
//! to 100, and survives rendering to Istio objects and extracting it back.
use super::*;
use crate::istio::OrderedMap;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use std::collections::{BTreeMap, BTreeSet};

const HOST: &str = "recommendation";

/// Weights for `count` destinations that add up to 100.
fn weights(count: usize) -> impl Strategy<Value = Vec<u32>> {
    proptest::collection::vec(0u32..=100, count.saturating_sub(1)).prop_map(|mut cuts| {
        cuts.sort_unstable();
        let mut previous = 0;
        let mut weights: Vec<u32> = cuts.iter().map(|cut| std::mem::replace(&mut previous, *cut)).collect();
        weights.iter_mut().zip(cuts.iter()).for_each(|(w, cut)| *w = cut - *w);
        weights.push(100 - previous);
        weights
    })
}

fn string_match() -> impl Strategy<Value = StringMatch> {
    prop_oneof![
        select(vec![".*Firefox.*", ".*Safari.*", "[a-z]+", "v[0-9]"]).prop_map(|r| StringMatch::Regex(r.into())),
        select(vec!["/api", "/", "12"]).prop_map(|p| StringMatch::Prefix(p.into())),
        select(vec!["bob", "GET", "/exact"]).prop_map(|e| StringMatch::Exact(e.into())),
    ]
}

fn match_entry() -> impl Strategy<Value = Match> {
    let headers = proptest::option::of(
        (select(vec!["baggage-user-agent", "x-user", "user-preference"]), string_match())
            .prop_map(|(name, m)| OrderedMap(vec![(name.to_string(), m)])),
    );
    (proptest::option::of(string_match()), proptest::option::of(string_match()), headers)
        .prop_map(|(uri, method, headers)| Match { uri, method, headers, ..Match::default() })
}

fn percentage() -> impl Strategy<Value = Option<f64>> {
    proptest::option::of(prop_oneof![(0u32..=100).prop_map(f64::from), Just(12.5)])
}

fn rule(targets: Vec<String>) -> impl Strategy<Value = Rule> {
    let pool = targets.clone();
    subsequence(targets.clone(), 1..=targets.len())
        .prop_flat_map(|chosen| {
            let count = chosen.len();
            (Just(chosen), weights(count))
        })
        .prop_flat_map(move |(chosen, weights)| {
            let route: Vec<Share> = chosen.iter().zip(&weights).map(|(s, w)| Share::new(s, *w)).collect();
            (
                Just(route),
                proptest::option::of(proptest::collection::vec(match_entry(), 0..3)),
                proptest::option::of(select(vec!["1s", "500ms", "1.5s", "2m"])),
                proptest::option::of((0i32..5, proptest::option::of(select(vec!["2s", "100ms"])))),
                proptest::option::of((select(vec!["7s", "10ms"]), percentage(), 200i32..600, percentage())),
                proptest::option::of((select(pool.clone()), percentage())),
                proptest::option::of(select(vec!["api", "default"])),
            )
        })
        .prop_map(|(route, matches, timeout, retries, fault, mirror, name)| Rule {
            matches,
            route,
            timeout: timeout.map(str::to_string),
            retries: retries.map(|(attempts, per_try)| Retries {
                attempts: Some(attempts),
                // Disabled retries (0 attempts) take no per-try timeout, as istiod requires.
                per_try_timeout: per_try.filter(|_| attempts > 0).map(str::to_string),
                ..Retries::default()
            }),
            fault: fault.map(|(delay, delay_pct, status, abort_pct)| Fault {
                delay: Some(Delay { fixed_delay: Some(delay.to_string()), percentage: delay_pct, ..Delay::default() }),
                abort: Some(Abort { http_status: Some(status), percentage: abort_pct, ..Abort::default() }),
                ..Fault::default()
            }),
            mirror: mirror.map(|(subset, percentage)| Mirror { subset, percentage }),
            other: name.map(|n| [("name".to_string(), serde_json::json!(n))].into_iter().collect()).unwrap_or_default(),
        })
}

fn policy() -> impl Strategy<Value = RoutingPolicy> {
    (0usize..4)
        .prop_flat_map(|subset_count| {
            let subsets: Vec<Subset> =
                (1..=subset_count).map(|i| Subset::version(&format!("version-v{i}"), &format!("v{i}"))).collect();
            let mut targets: Vec<String> = subsets.iter().map(|s| s.name.clone()).collect();
            targets.push(ALL_PODS.to_string());
            (Just(subsets), proptest::collection::vec(rule(targets), 0..4))
        })
        .prop_map(|(subsets, rules)| RoutingPolicy { host: HOST.to_string(), subsets, rules })
}

fn context(policy: &RoutingPolicy) -> ValidationContext {
    ValidationContext {
        services: BTreeSet::from([HOST.to_string()]),
        deployed_versions: policy.subsets.iter().map(|s| s.labels.clone()).collect(),
        gateway_api: false,
        gateway_api_retries: false,
    }
}

fn request() -> impl Strategy<Value = Request> {
    (
        select(vec!["/", "/api/x", "/exact", "/v1?x=1"]),
        select(vec!["GET", "POST"]),
        proptest::collection::btree_map(
            select(vec!["Baggage-User-Agent", "x-user", "user-preference"]).prop_map(str::to_string),
            select(vec!["Mozilla Firefox/120", "Safari", "bob", "123", ""]).prop_map(str::to_string),
            0..3,
        ),
    )
        .prop_map(|(path, method, headers): (&str, &str, BTreeMap<String, String>)| Request {
            path: path.into(),
            method: method.into(),
            headers,
            ..Request::default()
        })
}

proptest! {
    #[test]
    fn generated_policies_validate_without_errors(policy in policy()) {
        let findings = validate(&policy, &context(&policy));
        prop_assert!(!has_errors(&findings), "{findings:?}");
    }

    #[test]
    fn matched_shares_sum_to_100(policy in policy(), request in request()) {
        let evaluation = evaluate(&policy, &request, crate::policy::Precedence::FirstMatch);
        match evaluation.rule {
            Some(_) => prop_assert_eq!(evaluation.shares.iter().map(|s| s.1).sum::<u32>(), 100),
            None => prop_assert!(evaluation.shares.is_empty()),
        }
    }

    #[test]
    fn to_istio_then_from_istio_gives_the_same_policy(policy in policy()) {
        let (vs, dr) = policy.to_istio("tutorial", None, None);
        let back = RoutingPolicy::from_istio(HOST, Some(&vs), Some(&dr)).expect("extracts");
        prop_assert_eq!(&back, &policy);
        // Rendering again over the rendered objects changes nothing.
        let (vs_again, dr_again) = back.to_istio("tutorial", Some(&vs), Some(&dr));
        prop_assert_eq!(vs_again, vs);
        prop_assert_eq!(dr_again, dr);
    }

    #[test]
    fn json_api_round_trips(policy in policy()) {
        let json = serde_json::to_string(&policy).expect("serializes");
        let back: RoutingPolicy = serde_json::from_str(&json).expect("deserializes");
        prop_assert_eq!(back, policy);
    }
}
