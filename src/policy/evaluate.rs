//! "What if": which rule and subsets a request would get under a policy.
//!
//! Semantics follow Envoy as configured by Istio: the first matching rule wins; entries of
//! a rule's `match` list are ORed, conditions inside one entry ANDed; a rule without `match`
//! matches everything; header names compare case-insensitively; a regex must match the whole
//! value; the query string is not part of the path. Conditions the policy does not model
//! (e.g. `sourceLabels`) cannot be decided from a request, so such an entry never matches here.
//!
//! An HTTPRoute's rules are not tried in order: the most specific match wins
//! ([`Precedence::MostSpecific`]), and its path prefixes match whole path segments.
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

/// How the rule for a request is chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precedence {
    /// Istio's VirtualService: the first rule in order that matches.
    #[default]
    FirstMatch,
    /// The Gateway API's HTTPRoute: of the matching rules, the one with an exact path, else
    /// the longest path prefix, then a method, then the most header matches, then the most
    /// query parameter matches; rule order breaks ties. Regex paths rank below prefixes
    /// (the Gateway API leaves them to the implementation).
    MostSpecific,
}

/// The outcome of evaluating a request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Evaluation {
    /// Why that rule won over other matching rules, when precedence decided it.
    pub why: Option<String>,
    /// Index of the rule that matched; `None` means no rule matched and Kubernetes spreads
    /// requests round-robin over all the Service's pods.
    pub rule: Option<usize>,
    /// (subset, percent) of the matched rule, in order; empty when no rule matched.
    pub shares: Vec<(String, u32)>,
}

/// Evaluates `request` against `policy`, compiling each distinct regex once.
pub fn evaluate(policy: &RoutingPolicy, request: &Request, precedence: Precedence) -> Evaluation {
    evaluate_with(policy, request, precedence, &mut Regexes::default())
}

fn evaluate_with(
    policy: &RoutingPolicy,
    request: &Request,
    precedence: Precedence,
    regexes: &mut Regexes,
) -> Evaluation {
    let (index, why) = match precedence {
        Precedence::FirstMatch => {
            let first = policy.rules.iter().position(|rule| match &rule.matches {
                None => true,
                Some(entries) => {
                    entries.is_empty() || entries.iter().any(|entry| entry_matches(entry, request, regexes, false))
                }
            });
            (first, None)
        }
        Precedence::MostSpecific => most_specific(policy, request, regexes),
    };
    let Some(index) = index else { return Evaluation::default() };
    let rule = &policy.rules[index];
    let shares = rule.route.iter().map(|s| (s.subset.clone(), s.weight.percent().unwrap_or(0))).collect();
    Evaluation { why, rule: Some(index), shares }
}

/// How specific a matching entry is, compared field by field in the Gateway API's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Specificity {
    exact_path: bool,
    prefix_length: usize,
    method: bool,
    headers: usize,
    query_params: usize,
}

impl Specificity {
    fn of(entry: Option<&Match>) -> Self {
        let uri = entry.and_then(|e| e.uri.as_ref());
        Specificity {
            exact_path: matches!(uri, Some(StringMatch::Exact(_))),
            // No path condition is the API server's default, a prefix of `/`.
            prefix_length: match uri {
                Some(StringMatch::Prefix(prefix)) => prefix.len(),
                None => 1,
                _ => 0,
            },
            method: entry.is_some_and(|e| e.method.is_some()),
            headers: entry.and_then(|e| e.headers.as_ref()).map_or(0, OrderedMap::len),
            query_params: entry.and_then(|e| e.query_params.as_ref()).map_or(0, OrderedMap::len),
        }
    }

    /// What makes `self` win over `other`, in words.
    fn beats(&self, other: &Specificity) -> String {
        if self.exact_path != other.exact_path {
            "an exact path beats a path prefix".into()
        } else if self.prefix_length != other.prefix_length {
            format!("a longer path prefix ({} characters against {})", self.prefix_length, other.prefix_length)
        } else if self.method != other.method {
            "a method match beats none".into()
        } else if self.headers != other.headers {
            format!("more header matches ({} against {})", self.headers, other.headers)
        } else if self.query_params != other.query_params {
            format!("more query parameter matches ({} against {})", self.query_params, other.query_params)
        } else {
            "as specific, and earlier in the route".into()
        }
    }
}

/// The HTTPRoute rule a request gets, and why it won over the next most specific one.
fn most_specific(policy: &RoutingPolicy, request: &Request, regexes: &mut Regexes) -> (Option<usize>, Option<String>) {
    let mut candidates: Vec<(Specificity, usize)> = Vec::new();
    for (index, rule) in policy.rules.iter().enumerate() {
        let entries: Vec<Option<&Match>> = match rule.matches.as_deref() {
            None | Some([]) => vec![None],
            Some(entries) => entries.iter().map(Some).collect(),
        };
        let best = entries
            .into_iter()
            .filter(|entry| entry.is_none_or(|e| entry_matches(e, request, regexes, true)))
            .map(Specificity::of)
            .max();
        candidates.extend(best.map(|specificity| (specificity, index)));
    }
    // Most specific first; the earlier rule first among equals.
    candidates.sort_by(|(a, i), (b, j)| b.cmp(a).then(i.cmp(j)));
    let Some(&(winner, index)) = candidates.first() else { return (None, None) };
    let why = match candidates.get(1) {
        Some((runner_up, other)) => {
            format!("rule {} wins over rule {}: {}", index + 1, other + 1, winner.beats(runner_up))
        }
        None => format!("rule {} is the only rule that matches", index + 1),
    };
    (Some(index), Some(why))
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

/// `segment_prefixes`: a path prefix matches whole segments (`/api` matches `/api` and
/// `/api/v1`, not `/apis`), as the Gateway API's `PathPrefix` does.
fn entry_matches(entry: &Match, request: &Request, regexes: &mut Regexes, segment_prefixes: bool) -> bool {
    let (path, query) = request.path.split_once('?').unwrap_or((&request.path, ""));
    let path_matches = |m: &StringMatch, regexes: &mut Regexes| match m {
        StringMatch::Prefix(prefix) if segment_prefixes => {
            let prefix = prefix.trim_end_matches('/');
            path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        }
        _ => matches_with(m, path, regexes),
    };
    entry.other.is_empty()
        && entry.uri.as_ref().is_none_or(|m| path_matches(m, regexes))
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
        let eval = evaluate(&firefox(), &request("/", "GET", &[("Baggage-User-Agent", ua)]), Precedence::FirstMatch);
        assert_eq!(eval, Evaluation { why: None, rule: Some(0), shares: vec![("version-v2".into(), 100)] });
    }

    #[test]
    fn safari_gets_the_split() {
        let ua = "Mozilla/5.0 (Macintosh) AppleWebKit/605.1.15 Version/17.0 Safari/605.1.15";
        let eval = evaluate(&firefox(), &request("/", "GET", &[("baggage-user-agent", ua)]), Precedence::FirstMatch);
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
        let eval =
            evaluate_with(&p, &request("/v1", "GET", &[("x-user", "carol")]), Precedence::FirstMatch, &mut regexes);
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
        assert_eq!(evaluate(&p, &request("/exact?x=1", "GET", &[]), Precedence::FirstMatch).rule, Some(0));
        assert_eq!(evaluate(&p, &request("/exact/more", "GET", &[]), Precedence::FirstMatch).rule, None);
        assert_eq!(evaluate(&p, &request("/api/users", "GET", &[]), Precedence::FirstMatch).rule, Some(1));
        assert_eq!(evaluate(&p, &request("/v12/x", "GET", &[]), Precedence::FirstMatch).rule, Some(2));
        assert_eq!(evaluate(&p, &request("/v12/xy", "GET", &[]), Precedence::FirstMatch).rule, None);
    }

    #[test]
    fn method_and_query_params() {
        let p = policy(json!({"host":"r","rules":[
            {"match":[{"method":{"exact":"POST"}}],"route":{"a":100}},
            {"match":[{"queryParams":{"canary":{"exact":"1"}}}],"route":{"b":100}}]}));
        assert_eq!(evaluate(&p, &request("/", "POST", &[]), Precedence::FirstMatch).rule, Some(0));
        assert_eq!(evaluate(&p, &request("/?canary=1", "GET", &[]), Precedence::FirstMatch).rule, Some(1));
        assert_eq!(evaluate(&p, &request("/?canary=2", "GET", &[]), Precedence::FirstMatch).rule, None);
    }

    #[test]
    fn entries_are_ored_conditions_anded() {
        let p = policy(json!({"host":"r","rules":[
            {"match":[{"uri":{"prefix":"/a"},"headers":{"x-user":{"exact":"bob"}}},{"method":{"exact":"DELETE"}}],
             "route":{"a":100}}]}));
        assert_eq!(evaluate(&p, &request("/a", "GET", &[("x-user", "bob")]), Precedence::FirstMatch).rule, Some(0));
        assert_eq!(evaluate(&p, &request("/a", "GET", &[]), Precedence::FirstMatch).rule, None);
        assert_eq!(evaluate(&p, &request("/b", "GET", &[("x-user", "bob")]), Precedence::FirstMatch).rule, None);
        assert_eq!(evaluate(&p, &request("/b", "DELETE", &[]), Precedence::FirstMatch).rule, Some(0));
    }

    #[test]
    fn no_rules_means_round_robin() {
        let mut p = RoutingPolicy::new("r");
        p.subsets.push(Subset::version("v1", "v1"));
        assert_eq!(evaluate(&p, &request("/", "GET", &[]), Precedence::FirstMatch), Evaluation::default());
        p.rules.push(Rule::weighted(&[("v1", 100)]));
        assert_eq!(evaluate(&p, &request("/", "GET", &[]), Precedence::FirstMatch).rule, Some(0));
    }

    #[test]
    fn unmodelled_conditions_never_match() {
        let p = policy(json!({"host":"r","rules":[
            {"match":[{"sourceLabels":{"app":"preference"}}],"route":{"a":100}},{"route":{"b":100}}]}));
        assert_eq!(evaluate(&p, &request("/", "GET", &[]), Precedence::FirstMatch).rule, Some(1));
    }

    fn gateway_rules() -> RoutingPolicy {
        policy(json!({"host": "recommendation", "rules": [
            {"route": {"v1": 100}},
            {"match": [{"uri": {"prefix": "/api"}}], "route": {"v2": 100}},
            {"match": [{"uri": {"exact": "/api/login"}}], "route": {"v3": 100}},
            {"match": [{"headers": {"x-user": {"exact": "alice"}}}], "route": {"v2": 100}}
        ]}))
    }

    fn most_specific(path: &str, headers: &[(&str, &str)]) -> Evaluation {
        evaluate(&gateway_rules(), &request(path, "GET", headers), Precedence::MostSpecific)
    }

    #[test]
    fn an_http_route_gives_the_request_its_most_specific_rule_and_says_why() {
        let longer = most_specific("/api/users", &[]);
        assert_eq!(longer.rule, Some(1));
        assert_eq!(
            longer.why.as_deref(),
            Some("rule 2 wins over rule 1: a longer path prefix (4 characters against 1)")
        );
        let exact = most_specific("/api/login", &[]);
        assert_eq!(exact.rule, Some(2));
        assert_eq!(exact.why.as_deref(), Some("rule 3 wins over rule 2: an exact path beats a path prefix"));
        let headers = most_specific("/", &[("x-user", "alice")]);
        assert_eq!(headers.rule, Some(3));
        assert_eq!(headers.why.as_deref(), Some("rule 4 wins over rule 1: more header matches (1 against 0)"));
        assert_eq!(most_specific("/", &[]).why.as_deref(), Some("rule 1 is the only rule that matches"));
        // Istio's VirtualService takes the first match instead.
        let first = evaluate(&gateway_rules(), &request("/api/users", "GET", &[]), Precedence::FirstMatch);
        assert_eq!((first.rule, first.why), (Some(0), None));
    }

    #[test]
    fn an_http_route_path_prefix_matches_whole_segments() {
        let p =
            policy(json!({"host": "h", "rules": [{"match": [{"uri": {"prefix": "/api/"}}], "route": {"v2": 100}}]}));
        let rule = |path: &str| evaluate(&p, &request(path, "GET", &[]), Precedence::MostSpecific).rule;
        assert_eq!((rule("/api"), rule("/api/v1"), rule("/apis")), (Some(0), Some(0), None));
        assert_eq!(
            evaluate(&p, &request("/apis", "GET", &[]), Precedence::FirstMatch).rule,
            None,
            "Istio: /api/ is no prefix of /apis either"
        );
    }
}
