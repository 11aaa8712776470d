//! "What if": which rule and subsets a request would get under a policy.
//!
//! Semantics follow Envoy as configured by Istio: the first matching rule wins; entries of
//! a rule's `match` list are ORed, conditions inside one entry ANDed; a rule without `match`
//! matches everything; header names compare case-insensitively; a regex must match the whole
//! value; the query string is not part of the path; a header or query condition written as
//! regex `*` asks only that it be present. The conditions the policy keeps verbatim are decided
//! in [`super::conditions`]; a rule whose match depends on what the request does not say (the
//! caller, for `sourceLabels`) is passed over and named in the answer's `why`.
//!
//! An HTTPRoute's rules are not tried in order: the most specific match wins
//! ([`Precedence::MostSpecific`]), and its path prefixes match whole path segments.
use super::conditions::{self, Caller, Context, Decision, MESH};
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
    /// `http` when not given.
    pub scheme: Option<String>,
    /// The port the request is sent to; None: not said.
    pub port: Option<u16>,
    /// Who sends it; None: not said.
    pub source: Option<Caller>,
    /// The gateway it passes; None: none, a sidecar's request (`mesh`).
    pub gateway: Option<String>,
}

impl Request {
    /// What the request says beyond its path, method and headers; its authority is its
    /// `Host` header.
    fn context(&self) -> Context<'_> {
        Context {
            scheme: self.scheme.as_deref().unwrap_or("http"),
            authority: header(self, "host"),
            port: self.port,
            caller: self.source.as_ref(),
            gateway: self.gateway.as_deref().unwrap_or(MESH),
        }
    }
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
    /// No rule matched a VirtualService or HTTPRoute that has rules: Istio adds no default
    /// route then, so the sidecar answers 404 (`NR`) instead of spreading the request over
    /// the pods.
    pub no_route: bool,
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
        Precedence::FirstMatch => first_match(policy, request, regexes),
        Precedence::MostSpecific => most_specific(policy, request, regexes),
    };
    let Some(index) = index else {
        let no_route = !policy.rules.is_empty();
        return Evaluation { why, no_route, ..Evaluation::default() };
    };
    let rule = &policy.rules[index];
    let shares = rule.route.iter().map(|s| (s.subset.clone(), s.weight.percent().unwrap_or(0))).collect();
    Evaluation { why, rule: Some(index), shares, no_route: false }
}

/// The first rule that takes the request; the rules before it that depend on what the
/// request does not say are named in `why`, with what they depend on.
fn first_match(policy: &RoutingPolicy, request: &Request, regexes: &mut Regexes) -> (Option<usize>, Option<String>) {
    let mut undecided = Vec::new();
    for (index, rule) in policy.rules.iter().enumerate() {
        let decision = match rule.matches.as_deref() {
            None | Some([]) => Decision::Takes,
            Some(entries) => any_entry(entries, request, regexes, false),
        };
        match decision {
            Decision::Takes => return (Some(index), depends_note(&undecided, Some(index))),
            Decision::Refuses => {}
            Decision::Depends(on) => undecided.push((index, on)),
        }
    }
    (None, depends_note(&undecided, None))
}

/// Entries are ORed: one that takes the request decides; else what one depends on.
fn any_entry(entries: &[Match], request: &Request, regexes: &mut Regexes, segment_prefixes: bool) -> Decision {
    let mut depends = None;
    for entry in entries {
        match entry_decision(entry, request, regexes, segment_prefixes) {
            Decision::Takes => return Decision::Takes,
            Decision::Refuses => {}
            Decision::Depends(on) => depends = depends.or(Some(on)),
        }
    }
    depends.map_or(Decision::Refuses, Decision::Depends)
}

fn depends_note(undecided: &[(usize, String)], taken: Option<usize>) -> Option<String> {
    if undecided.is_empty() {
        return None;
    }
    let rules: Vec<String> =
        undecided.iter().map(|(index, on)| format!("rule {} depends on {on}", index + 1)).collect();
    let otherwise = match taken {
        Some(index) => format!("rule {}", index + 1),
        None => "no route (the sidecar answers 404)".to_owned(),
    };
    let it = if undecided.len() == 1 { "it does" } else { "they do" };
    Some(format!("{}; a request {it} not take gets {otherwise}", rules.join("; ")))
}

/// How specific a matching entry is, compared field by field in the Gateway API's order as
/// istiod sorts an HTTPRoute's routes (`sortHTTPRoutes`): the kind of path (exact, prefix,
/// regex), then its length, a method, the number of headers, of query parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Specificity {
    path: PathKind,
    path_length: usize,
    method: bool,
    headers: usize,
    query_params: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum PathKind {
    Regex,
    Prefix,
    Exact,
}

impl Specificity {
    fn of(entry: Option<&Match>) -> Self {
        // No path condition is the API server's default, a prefix of `/`.
        let (path, path_length) = match entry.and_then(|e| e.uri.as_ref()) {
            Some(StringMatch::Exact(path)) => (PathKind::Exact, path.len()),
            Some(StringMatch::Prefix(prefix)) => (PathKind::Prefix, prefix.len()),
            Some(StringMatch::Regex(regex)) => (PathKind::Regex, regex.len()),
            None => (PathKind::Prefix, 1),
        };
        Specificity {
            path,
            path_length,
            method: entry.is_some_and(|e| e.method.is_some()),
            headers: entry.and_then(|e| e.headers.as_ref()).map_or(0, OrderedMap::len),
            query_params: entry.and_then(|e| e.query_params.as_ref()).map_or(0, OrderedMap::len),
        }
    }

    /// What makes `self` win over `other`, in words.
    fn beats(&self, other: &Specificity) -> String {
        if self.path != other.path {
            match (self.path, other.path) {
                (PathKind::Exact, _) => "an exact path beats a path prefix or regex".into(),
                _ => "a path prefix beats a path regex".into(),
            }
        } else if self.path_length != other.path_length {
            let what = match self.path {
                PathKind::Regex => "path regex",
                PathKind::Exact => "exact path",
                PathKind::Prefix => "path prefix",
            };
            format!("a longer {what} ({} characters against {})", self.path_length, other.path_length)
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
            .filter(|entry| entry.is_none_or(|e| entry_decision(e, request, regexes, true) == Decision::Takes))
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
fn entry_decision(entry: &Match, request: &Request, regexes: &mut Regexes, segment_prefixes: bool) -> Decision {
    let (path, query) = request.path.split_once('?').unwrap_or((&request.path, ""));
    let ignore_case = conditions::ignores_uri_case(&entry.other);
    let path_matches = |m: &StringMatch, regexes: &mut Regexes| match m {
        StringMatch::Prefix(prefix) if segment_prefixes => {
            let prefix = prefix.trim_end_matches('/');
            path.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        }
        // Envoy's `case_sensitive: false` applies to exact paths and prefixes, not to regexes.
        StringMatch::Exact(exact) if ignore_case => path.eq_ignore_ascii_case(exact),
        StringMatch::Prefix(prefix) if ignore_case => {
            path.get(..prefix.len()).is_some_and(|start| start.eq_ignore_ascii_case(prefix))
        }
        _ => matches_with(m, path, regexes),
    };
    let typed = entry.uri.as_ref().is_none_or(|m| path_matches(m, regexes))
        && entry.method.as_ref().is_none_or(|m| matches_with(m, &request.method, regexes))
        && entry
            .query_params
            .as_ref()
            .is_none_or(|q| all_present_and_match(q, |name| query_param(query, name), regexes));
    Decision::from_bool(typed)
        .and(|| headers_decision(entry.headers.as_ref(), request, regexes))
        .and(|| conditions::decide(&entry.other, request.context(), |name| header(request, name), regexes))
}

/// Headers named `@request.auth.claims…` are the caller's JWT claims, not headers (Istio
/// matches them against the request's authentication metadata): not decided here.
fn headers_decision(
    conditions: Option<&OrderedMap<StringMatch>>,
    request: &Request,
    regexes: &mut Regexes,
) -> Decision {
    let Some(conditions) = conditions else { return Decision::Takes };
    let (claims, headers): (Vec<_>, Vec<_>) =
        conditions.iter().partition(|(name, _)| name.starts_with("@request.auth.claims"));
    let headers_met = headers
        .iter()
        .all(|(name, m)| header(request, name).is_some_and(|value| present_or_matches(m, value, regexes)));
    match (headers_met, claims.first()) {
        (false, _) => Decision::Refuses,
        (true, None) => Decision::Takes,
        (true, Some((claim, _))) => Decision::Depends(format!("the caller's JWT claim ({claim})")),
    }
}

fn all_present_and_match<'a>(
    conditions: &OrderedMap<StringMatch>,
    lookup: impl Fn(&str) -> Option<&'a str>,
    regexes: &mut Regexes,
) -> bool {
    conditions.iter().all(|(name, m)| lookup(name).is_some_and(|value| present_or_matches(m, value, regexes)))
}

/// Istio compiles a header or query condition of regex `*` to "is present".
fn present_or_matches(m: &StringMatch, value: &str, regexes: &mut Regexes) -> bool {
    matches!(m, StringMatch::Regex(pattern) if pattern == "*") || matches_with(m, value, regexes)
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
    m.is_met(value, regexes)
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
            ..Request::default()
        }
    }

    #[test]
    fn firefox_goes_to_v2() {
        let ua = "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0";
        let eval = evaluate(&firefox(), &request("/", "GET", &[("Baggage-User-Agent", ua)]), Precedence::FirstMatch);
        assert_eq!(
            eval,
            Evaluation { why: None, rule: Some(0), shares: vec![("version-v2".into(), 100)], no_route: false }
        );
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
    fn no_rules_means_round_robin_and_rules_that_all_miss_mean_no_route() {
        let mut p = RoutingPolicy::new("r");
        p.subsets.push(Subset::version("v1", "v1"));
        assert_eq!(evaluate(&p, &request("/", "GET", &[]), Precedence::FirstMatch), Evaluation::default());
        let only_x =
            policy(json!({"host": "r", "rules": [{"match": [{"uri": {"exact": "/x"}}], "route": {"a": 100}}]}));
        let missed = evaluate(&only_x, &request("/", "GET", &[]), Precedence::FirstMatch);
        assert!(missed.no_route && missed.rule.is_none(), "{missed:?}");
        assert!(evaluate(&only_x, &request("/", "GET", &[]), Precedence::MostSpecific).no_route);
        p.rules.push(Rule::weighted(&[("v1", 100)]));
        assert_eq!(evaluate(&p, &request("/", "GET", &[]), Precedence::FirstMatch).rule, Some(0));
    }

    /// Rules 1 and 2 of a policy whose first rule has `entry` as its match, the second none.
    fn first_rule_with(entry: serde_json::Value) -> RoutingPolicy {
        policy(json!({"host": "r", "rules": [{"match": [entry], "route": {"a": 100}}, {"route": {"b": 100}}]}))
    }

    fn rule_for(p: &RoutingPolicy, request: &Request) -> Option<usize> {
        evaluate(p, request, Precedence::FirstMatch).rule
    }

    fn from(namespace: &str, labels: &[(&str, &str)]) -> Request {
        let labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Request { source: Some(Caller { namespace: namespace.into(), labels }), ..request("/", "GET", &[]) }
    }

    #[test]
    fn a_rule_for_some_callers_depends_on_the_caller_until_the_request_names_one() {
        let p = first_rule_with(json!({"sourceLabels": {"app": "preference"}}));
        let unknown = evaluate(&p, &request("/", "GET", &[]), Precedence::FirstMatch);
        assert_eq!(unknown.rule, Some(1));
        assert_eq!(
            unknown.why.as_deref(),
            Some(
                "rule 1 depends on the caller (only app=preference get this route); a request it does not take gets rule 2"
            )
        );
        assert_eq!(rule_for(&p, &from("tutorial", &[("app", "preference"), ("version", "v1")])), Some(0));
        assert_eq!(rule_for(&p, &from("tutorial", &[("app", "customer")])), Some(1));
        let namespaced = first_rule_with(json!({"sourceNamespace": "shop"}));
        assert_eq!(rule_for(&namespaced, &from("shop", &[])), Some(0));
        assert_eq!(rule_for(&namespaced, &from("tutorial", &[])), Some(1));
        assert!(
            evaluate(&namespaced, &request("/", "GET", &[]), Precedence::FirstMatch)
                .why
                .unwrap()
                .contains("namespace shop")
        );
    }

    #[test]
    fn gateways_decide_which_proxies_get_the_route_before_source_labels() {
        let gateway_only = first_rule_with(json!({"gateways": ["istio-system/ingress"], "sourceLabels": {"app": "x"}}));
        assert_eq!(rule_for(&gateway_only, &request("/", "GET", &[])), Some(1), "a sidecar is the mesh gateway");
        let through = Request { gateway: Some("istio-system/ingress".into()), ..request("/", "GET", &[]) };
        assert_eq!(rule_for(&gateway_only, &through), Some(0), "gateways set: sourceLabels are not asked");
        assert_eq!(rule_for(&first_rule_with(json!({"gateways": ["mesh"]})), &request("/", "GET", &[])), Some(0));
    }

    #[test]
    fn ignore_uri_case_applies_to_exact_paths_and_prefixes_not_to_regexes() {
        let prefix = first_rule_with(json!({"uri": {"prefix": "/Admin"}, "ignoreUriCase": true}));
        assert_eq!(rule_for(&prefix, &request("/ADMIN/users", "GET", &[])), Some(0));
        let exact = first_rule_with(json!({"uri": {"exact": "/Login"}, "ignoreUriCase": true}));
        assert_eq!(rule_for(&exact, &request("/login", "GET", &[])), Some(0));
        assert_eq!(rule_for(&exact, &request("/login/x", "GET", &[])), Some(1));
        let regex = first_rule_with(json!({"uri": {"regex": "/Admin/.*"}, "ignoreUriCase": true}));
        assert_eq!(rule_for(&regex, &request("/ADMIN/users", "GET", &[])), Some(1));
        let sensitive = first_rule_with(json!({"uri": {"prefix": "/Admin"}}));
        assert_eq!(rule_for(&sensitive, &request("/ADMIN/users", "GET", &[])), Some(1));
    }

    #[test]
    fn without_headers_takes_requests_lacking_the_header_or_its_value() {
        let p = first_rule_with(json!({"withoutHeaders": {"x-user": {"exact": "bob"}}}));
        assert_eq!(rule_for(&p, &request("/", "GET", &[])), Some(0), "a missing header is read as empty");
        assert_eq!(rule_for(&p, &request("/", "GET", &[("X-User", "alice")])), Some(0));
        assert_eq!(rule_for(&p, &request("/", "GET", &[("x-user", "bob")])), Some(1));
        let absent = first_rule_with(json!({"withoutHeaders": {"x-canary": {}}}));
        assert_eq!(rule_for(&absent, &request("/", "GET", &[])), Some(0));
        assert_eq!(rule_for(&absent, &request("/", "GET", &[("x-canary", "")])), Some(1));
        let empty_prefix = first_rule_with(json!({"withoutHeaders": {"x-user": {"prefix": ""}}}));
        assert_eq!(rule_for(&empty_prefix, &request("/", "GET", &[])), Some(1), "empty starts with empty");
    }

    #[test]
    fn port_scheme_and_authority_are_decided_when_the_request_says_them() {
        let port = first_rule_with(json!({"port": 8080}));
        assert!(evaluate(&port, &request("/", "GET", &[]), Precedence::FirstMatch).why.unwrap().contains("port 8080"));
        assert_eq!(rule_for(&port, &Request { port: Some(8080), ..request("/", "GET", &[]) }), Some(0));
        assert_eq!(rule_for(&port, &Request { port: Some(9080), ..request("/", "GET", &[]) }), Some(1));
        let https = first_rule_with(json!({"scheme": {"exact": "https"}}));
        assert_eq!(rule_for(&https, &request("/", "GET", &[])), Some(1), "http unless said");
        assert_eq!(rule_for(&https, &Request { scheme: Some("https".into()), ..request("/", "GET", &[]) }), Some(0));
        let authority = first_rule_with(json!({"authority": {"prefix": "shop."}}));
        assert!(
            evaluate(&authority, &request("/", "GET", &[]), Precedence::FirstMatch).why.unwrap().contains("authority")
        );
        assert_eq!(rule_for(&authority, &request("/", "GET", &[("Host", "shop.example")])), Some(0));
        assert_eq!(rule_for(&authority, &request("/", "GET", &[("Host", "other")])), Some(1));
    }

    #[test]
    fn names_change_nothing_presence_is_regex_star_and_claims_and_unknown_fields_are_not_decided() {
        let named = first_rule_with(json!({"name": "canary", "statPrefix": "x", "uri": {"prefix": "/"}}));
        assert_eq!(evaluate(&named, &request("/", "GET", &[]), Precedence::FirstMatch).why, None);
        assert_eq!(rule_for(&named, &request("/", "GET", &[])), Some(0));
        let present =
            first_rule_with(json!({"headers": {"x-canary": {"regex": "*"}}, "queryParams": {"v": {"regex": "*"}}}));
        assert_eq!(rule_for(&present, &request("/?v=", "GET", &[("x-canary", "no")])), Some(0));
        assert_eq!(rule_for(&present, &request("/", "GET", &[("x-canary", "no")])), Some(1));
        let claims = first_rule_with(json!({"headers": {"@request.auth.claims.group": {"exact": "beta"}}}));
        let why = evaluate(&claims, &request("/", "GET", &[]), Precedence::FirstMatch).why.unwrap();
        assert!(why.starts_with("rule 1 depends on the caller's JWT claim"), "{why}");
        let unknown = first_rule_with(json!({"futureField": true}));
        let why = evaluate(&unknown, &request("/", "GET", &[]), Precedence::FirstMatch).why.unwrap();
        assert!(why.contains("futureField, which the tester does not decide"), "{why}");
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
        assert_eq!(exact.why.as_deref(), Some("rule 3 wins over rule 2: an exact path beats a path prefix or regex"));
        let headers = most_specific("/", &[("x-user", "alice")]);
        assert_eq!(headers.rule, Some(3));
        assert_eq!(headers.why.as_deref(), Some("rule 4 wins over rule 1: more header matches (1 against 0)"));
        assert_eq!(most_specific("/", &[]).why.as_deref(), Some("rule 1 is the only rule that matches"));
        // Istio's VirtualService takes the first match instead.
        let first = evaluate(&gateway_rules(), &request("/api/users", "GET", &[]), Precedence::FirstMatch);
        assert_eq!((first.rule, first.why), (Some(0), None));
    }

    #[test]
    fn of_two_http_route_regexes_the_longer_wins_as_istiod_sorts_them() {
        let p = policy(json!({"host": "h", "rules": [
            {"match": [{"uri": {"regex": "/a.*"}}], "route": {"v1": 100}},
            {"match": [{"uri": {"regex": "/api/.*"}}], "route": {"v2": 100}},
            {"match": [{"uri": {"prefix": "/zzz"}}], "route": {"v3": 100}}]}));
        let eval = evaluate(&p, &request("/api/users", "GET", &[]), Precedence::MostSpecific);
        assert_eq!(eval.rule, Some(1));
        assert_eq!(eval.why.as_deref(), Some("rule 2 wins over rule 1: a longer path regex (7 characters against 4)"));
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
