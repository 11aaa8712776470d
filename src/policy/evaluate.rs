//! "What if": which rule and subsets a request would get under a policy.
//!
//! Semantics follow Envoy as configured by Istio: the first matching rule wins; entries of
//! a rule's `match` list are ORed, conditions inside one entry ANDed; a rule without `match`
//! matches everything; header names compare case-insensitively; a regex must match the whole
//! value; the query string is not part of the path. Conditions the policy does not model
//! (e.g. `sourceLabels`) cannot be decided from a request, so such an entry never matches here.
use super::model::{Match, RoutingPolicy, StringMatch};
use super::user_regex::Regexes;
use crate::istio::OrderedMap;
use std::collections::BTreeMap;

/// A request to evaluate.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Request {
    /// Path, optionally with a `?query`.
    pub path: String,
    /// HTTP method, e.g. `GET`.
    pub method: String,
    /// Request headers (any case).
    pub headers: BTreeMap<String, String>,
}

/// The outcome of evaluating a request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Evaluation {
    /// Index of the rule that matched; `None` means no rule matched and Kubernetes spreads
    /// requests round-robin over all the Service's pods.
    pub rule: Option<usize>,
    /// (subset, percent) of the matched rule, in order; empty when no rule matched.
    pub shares: Vec<(String, u32)>,
}

/// Evaluates `request` against `policy`, compiling each distinct regex once.
pub fn evaluate(policy: &RoutingPolicy, request: &Request) -> Evaluation {
    evaluate_with(policy, request, &mut Regexes::default())
}

fn evaluate_with(policy: &RoutingPolicy, request: &Request, regexes: &mut Regexes) -> Evaluation {
    let Some((index, rule)) = policy.rules.iter().enumerate().find(|(_, rule)| match &rule.matches {
        None => true,
        Some(entries) => entries.is_empty() || entries.iter().any(|entry| entry_matches(entry, request, regexes)),
    }) else {
        return Evaluation::default();
    };
    let shares = rule.route.iter().map(|s| (s.subset.clone(), s.weight.percent().unwrap_or(0))).collect();
    Evaluation { rule: Some(index), shares }
}

/// The total length of the policy's regex patterns: how heavy evaluating it may be.
pub fn regex_source_length(policy: &RoutingPolicy) -> usize {
    let entries = policy.rules.iter().flat_map(|rule| rule.matches.iter().flatten());
    let string_matches = entries.flat_map(|entry| {
        let named = entry.headers.iter().chain(entry.query_params.iter()).flat_map(|map| map.iter().map(|(_, m)| m));
        entry.uri.iter().chain(entry.method.iter()).chain(named)
    });
    string_matches.map(|m| if let StringMatch::Regex(pattern) = m { pattern.len() } else { 0 }).sum()
}

fn entry_matches(entry: &Match, request: &Request, regexes: &mut Regexes) -> bool {
    let (path, query) = request.path.split_once('?').unwrap_or((&request.path, ""));
    entry.other.is_empty()
        && entry.uri.as_ref().is_none_or(|m| matches_with(m, path, regexes))
        && entry.method.as_ref().is_none_or(|m| matches_with(m, &request.method, regexes))
        && entry.headers.as_ref().is_none_or(|h| all_present_and_match(h, |name| header(request, name), regexes))
        && entry
            .query_params
            .as_ref()
            .is_none_or(|q| all_present_and_match(q, |name| query_param(query, name), regexes))
}

fn all_present_and_match<'a>(
    conditions: &OrderedMap<StringMatch>,
    lookup: impl Fn(&str) -> Option<&'a str>,
    regexes: &mut Regexes,
) -> bool {
    conditions.iter().all(|(name, m)| lookup(name).is_some_and(|value| matches_with(m, value, regexes)))
}

fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
    request.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

fn query_param<'a>(query: &'a str, name: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether `value` satisfies `m`; an invalid (or too large) regex matches nothing.
pub fn string_matches(m: &StringMatch, value: &str) -> bool {
    matches_with(m, value, &mut Regexes::default())
}

fn matches_with(m: &StringMatch, value: &str, regexes: &mut Regexes) -> bool {
    match m {
        StringMatch::Exact(expected) => value == expected,
        StringMatch::Prefix(prefix) => value.starts_with(prefix.as_str()),
        StringMatch::Regex(pattern) => regexes.is_full_match(pattern, value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Rule, Subset};
    use serde_json::json;

    fn policy(value: serde_json::Value) -> RoutingPolicy {
        serde_json::from_value(value).unwrap()
    }

    fn firefox() -> RoutingPolicy {
        policy(json!({"host":"recommendation",
            "subsets":{"version-v1":{"version":"v1"},"version-v2":{"version":"v2"}},
            "rules":[{"match":[{"headers":{"baggage-user-agent":{"regex":".*Firefox.*"}}}],"route":{"version-v2":100}},
                     {"route":{"version-v1":90,"version-v2":10}}]}))
    }

    fn request(path: &str, method: &str, headers: &[(&str, &str)]) -> Request {
        Request {
            path: path.into(),
            method: method.into(),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn firefox_goes_to_v2() {
        let ua = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";
        let eval = evaluate(&firefox(), &request("/", "GET", &[("Baggage-User-Agent", ua)]));
        assert_eq!(eval, Evaluation { rule: Some(0), shares: vec![("version-v2".into(), 100)] });
    }

    #[test]
    fn safari_gets_the_split() {
        let ua = "Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15 Version/17.0 Safari/605.1.15";
        let eval = evaluate(&firefox(), &request("/", "GET", &[("baggage-user-agent", ua)]));
        assert_eq!(eval.rule, Some(1));
        assert_eq!(eval.shares, vec![("version-v1".into(), 90), ("version-v2".into(), 10)]);
        assert_eq!(eval.shares.iter().map(|s| s.1).sum::<u32>(), 100);
    }

    #[test]
    fn regex_must_match_whole_value() {
        assert!(!string_matches(&StringMatch::Regex("Firefox".into()), "a Firefox b"));
        assert!(string_matches(&StringMatch::Regex("Fire.*|x".into()), "Firefox"));
        assert!(!string_matches(&StringMatch::Regex("(".into()), "("));
    }

    #[test]
    fn one_evaluation_compiles_each_distinct_regex_once() {
        let rules: Vec<serde_json::Value> = (0..40)
            .map(|_| {
                json!({"match": [{"headers": {"x-user": {"regex": "bob|alice"}}, "uri": {"regex": "/v[0-9]+"}}],
                            "route": {"a": 100}})
            })
            .chain([json!({"route": {"b": 100}})])
            .collect();
        let p = policy(json!({"host": "r", "rules": rules}));
        let mut regexes = Regexes::default();
        let eval = evaluate_with(&p, &request("/v1", "GET", &[("x-user", "carol")]), &mut regexes);
        assert_eq!(eval.rule, Some(40));
        assert_eq!(regexes.compiled(), 2, "two patterns, each compiled once for 40 rules");
        assert_eq!(regex_source_length(&p), 40 * ("bob|alice".len() + "/v[0-9]+".len()));
    }

    #[test]
    fn uri_prefix_exact_regex_ignore_query() {
        let p = policy(json!({"host":"r","rules":[
            {"match":[{"uri":{"exact":"/exact"}}],"route":{"a":100}},
            {"match":[{"uri":{"prefix":"/api"}}],"route":{"b":100}},
            {"match":[{"uri":{"regex":"/v[0-9]+/x"}}],"route":{"c":100}}]}));
        assert_eq!(evaluate(&p, &request("/exact?x=1", "GET", &[])).rule, Some(0));
        assert_eq!(evaluate(&p, &request("/exact/more", "GET", &[])).rule, None);
        assert_eq!(evaluate(&p, &request("/api/users", "GET", &[])).rule, Some(1));
        assert_eq!(evaluate(&p, &request("/v12/x", "GET", &[])).rule, Some(2));
        assert_eq!(evaluate(&p, &request("/v12/xy", "GET", &[])).rule, None);
    }

    #[test]
    fn method_and_query_params() {
        let p = policy(json!({"host":"r","rules":[
            {"match":[{"method":{"exact":"POST"}}],"route":{"a":100}},
            {"match":[{"queryParams":{"canary":{"exact":"1"}}}],"route":{"b":100}}]}));
        assert_eq!(evaluate(&p, &request("/", "POST", &[])).rule, Some(0));
        assert_eq!(evaluate(&p, &request("/?canary=1", "GET", &[])).rule, Some(1));
        assert_eq!(evaluate(&p, &request("/?canary=2", "GET", &[])).rule, None);
    }

    #[test]
    fn entries_are_ored_conditions_anded() {
        let p = policy(json!({"host":"r","rules":[
            {"match":[{"uri":{"prefix":"/a"},"headers":{"x-user":{"exact":"bob"}}},{"method":{"exact":"DELETE"}}],
             "route":{"a":100}}]}));
        assert_eq!(evaluate(&p, &request("/a", "GET", &[("x-user", "bob")])).rule, Some(0));
        assert_eq!(evaluate(&p, &request("/a", "GET", &[])).rule, None);
        assert_eq!(evaluate(&p, &request("/b", "GET", &[("x-user", "bob")])).rule, None);
        assert_eq!(evaluate(&p, &request("/b", "DELETE", &[])).rule, Some(0));
    }

    #[test]
    fn no_rules_means_round_robin() {
        let mut p = RoutingPolicy::new("r");
        p.subsets.push(Subset::version("v1", "v1"));
        assert_eq!(evaluate(&p, &request("/", "GET", &[])), Evaluation::default());
        p.rules.push(Rule::weighted(&[("v1", 100)]));
        assert_eq!(evaluate(&p, &request("/", "GET", &[])).rule, Some(0));
    }

    #[test]
    fn unmodelled_conditions_never_match() {
        let p = policy(json!({"host":"r","rules":[
            {"match":[{"sourceLabels":{"app":"preference"}}],"route":{"a":100}},{"route":{"b":100}}]}));
        assert_eq!(evaluate(&p, &request("/", "GET", &[])).rule, Some(1));
    }
}
