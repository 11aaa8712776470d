//! Validation of a [`RoutingPolicy`] with field-addressed errors and warnings.
//!
//! Field paths follow the JSON API: `rules[1].route.version-v2`, `subsets.version-v1`,
//! `rules[0].match[0].headers.user-agent`. Errors block a change; warnings are shown.
use super::model::{ALL_PODS, Match, Retries, RoutingPolicy, Rule, StringMatch};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// How serious a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The policy must not be applied.
    Error,
    /// The policy can be applied but probably does not do what was meant.
    Warning,
}

/// One finding, addressed by its JSON field path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// JSON path of the offending field, e.g. `rules[1].route.version-v2`.
    pub field: String,
    /// What is wrong, in plain words.
    pub message: String,
    /// Error or warning.
    pub severity: Severity,
}

/// What validation needs to know about the namespace.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ValidationContext {
    /// Names of the Services in the namespace.
    pub services: BTreeSet<String>,
    /// Pod labels of each deployed version of the host (one map per Deployment).
    pub deployed_versions: Vec<BTreeMap<String, String>>,
    /// The policy is written into an HTTPRoute: the fields kept verbatim are the Gateway
    /// API's (see [`super::gateway_api::inexpressible`]), not Istio's.
    pub gateway_api: bool,
    /// The installed HTTPRoute CRD is the Gateway API's experimental channel, which has
    /// `retry`.
    pub gateway_api_retries: bool,
}

/// HTTP route fields the policy keeps verbatim that Istio knows.
const KNOWN_ROUTE_FIELDS: [&str; 11] = [
    "name",
    "redirect",
    "directResponse",
    "delegate",
    "rewrite",
    "corsPolicy",
    "headers",
    "mirror",
    "mirrors",
    "mirrorPercentage",
    "mirrorPercent",
];

/// Match fields the policy keeps verbatim that Istio knows.
const KNOWN_MATCH_FIELDS: [&str; 10] = [
    "name",
    "scheme",
    "authority",
    "port",
    "sourceLabels",
    "gateways",
    "ignoreUriCase",
    "withoutHeaders",
    "sourceNamespace",
    "statPrefix",
];

/// Checks `policy` against Istio's rules and the namespace; returns every finding.
pub fn validate(policy: &RoutingPolicy, ctx: &ValidationContext) -> Vec<FieldError> {
    let mut findings = Findings::default();
    check_host(&policy.host, ctx, &mut findings);
    check_subsets(policy, ctx, &mut findings);
    for (index, rule) in policy.rules.iter().enumerate() {
        check_rule(policy, rule, &format!("rules[{index}]"), &mut findings);
        if !ctx.gateway_api {
            check_istio_fields(rule, &format!("rules[{index}]"), &mut findings);
        }
    }
    check_reachability(&policy.rules, &mut findings);
    findings.0
}

/// Whether any finding is an error.
pub fn has_errors(findings: &[FieldError]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Error)
}

#[derive(Default)]
struct Findings(Vec<FieldError>);

impl Findings {
    fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.push(field, message, Severity::Error);
    }

    fn warning(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.push(field, message, Severity::Warning);
    }

    fn push(&mut self, field: impl Into<String>, message: impl Into<String>, severity: Severity) {
        self.0.push(FieldError { field: field.into(), message: message.into(), severity });
    }
}

fn check_host(host: &str, ctx: &ValidationContext, findings: &mut Findings) {
    if !is_dns_subdomain(host) {
        findings.error("host", "must be a DNS name: lowercase letters, digits, '-' and '.'");
        return;
    }
    let service = host.split('.').next().unwrap_or(host);
    if !ctx.services.contains(service) {
        findings.error("host", format!("there is no Service named {service} in this namespace"));
    }
}

fn check_subsets(policy: &RoutingPolicy, ctx: &ValidationContext, findings: &mut Findings) {
    for (index, subset) in policy.subsets.iter().enumerate() {
        let field = format!("subsets.{}", subset.name);
        if !is_dns_label(&subset.name) {
            findings.error(&field, "a subset name must be a DNS label: lowercase letters, digits and '-', at most 63");
        }
        if policy.subsets[..index].iter().any(|s| s.name == subset.name) {
            findings.error(&field, "defined twice");
        }
        for (key, value) in &subset.labels {
            if !is_label_key(key) {
                findings.error(format!("{field}.{key}"), "not a valid Kubernetes label key");
            } else if !is_label_value(value) {
                findings.error(format!("{field}.{key}"), "not a valid Kubernetes label value");
            }
        }
        if subset.labels.is_empty() {
            findings.warning(&field, "has no labels, so it selects every pod of the host");
        } else if !ctx.deployed_versions.iter().any(|v| subset.labels.iter().all(|(k, val)| v.get(k) == Some(val))) {
            findings.warning(&field, "no deployed version has these labels; traffic sent here will fail");
        }
    }
}

fn check_rule(policy: &RoutingPolicy, rule: &Rule, base: &str, findings: &mut Findings) {
    for (index, entry) in rule.matches.iter().flatten().enumerate() {
        check_match(entry, &format!("{base}.match[{index}]"), findings);
    }
    check_route(policy, rule, base, findings);
    if let Some(timeout) = &rule.timeout {
        check_duration(timeout, &format!("{base}.timeout"), findings);
    }
    if let Some(retries) = &rule.retries {
        check_retries(retries, &format!("{base}.retries"), findings);
    }
    check_fault(rule, base, findings);
    if let Some(mirror) = &rule.mirror {
        check_subset_defined(policy, &mirror.subset, &format!("{base}.mirror.subset"), findings);
        check_percentage(mirror.percentage, &format!("{base}.mirror.percentage"), findings);
    }
}

/// The fields a VirtualService's rule and matches keep verbatim must be Istio's.
fn check_istio_fields(rule: &Rule, base: &str, findings: &mut Findings) {
    for key in rule.other.keys().filter(|k| !KNOWN_ROUTE_FIELDS.contains(&k.as_str())) {
        findings.error(format!("{base}.{key}"), "is not a field of an Istio HTTP route");
    }
    for (index, entry) in rule.matches.iter().flatten().enumerate() {
        for key in entry.other.keys().filter(|k| !KNOWN_MATCH_FIELDS.contains(&k.as_str())) {
            findings.error(format!("{base}.match[{index}].{key}"), "is not a field of an Istio match");
        }
    }
}

/// Retry conditions istiod accepts besides HTTP status codes (its `supportedRetryOnPolicies`:
/// Envoy's `x-envoy-retry-on` and `x-envoy-retry-grpc-on` values).
const RETRY_ON_CONDITIONS: [&str; 16] = [
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "envoy-ratelimited",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
];

/// The checks istiod's webhook makes on a retry policy, so the form says so before a dry run.
fn check_retries(retries: &Retries, base: &str, findings: &mut Findings) {
    if retries.attempts.is_some_and(|a| a < 0) {
        findings.error(format!("{base}.attempts"), "must be 0 or more");
    }
    if let Some(per_try) = &retries.per_try_timeout {
        check_duration(per_try, &format!("{base}.perTryTimeout"), findings);
    }
    if let Some(retry_on) = &retries.retry_on {
        let unknown: Vec<String> =
            retry_on.split(',').filter(|c| !is_retry_condition(c)).map(|c| format!("\"{c}\"")).collect();
        if !unknown.is_empty() {
            let message = format!(
                "not a retry condition Istio knows: {}; use comma-separated HTTP status codes or {}",
                unknown.join(", "),
                RETRY_ON_CONDITIONS.join(", ")
            );
            findings.error(format!("{base}.retryOn"), message);
        }
    }
    let configures_retries = retries.per_try_timeout.is_some() || retries.retry_on.is_some();
    if retries.attempts == Some(0) && configures_retries {
        findings.error(format!("{base}.attempts"), "0 disables retries, so perTryTimeout and retryOn cannot be set");
    }
}

/// A condition of `retryOn`: a known name, or an HTTP status code Go's `http.StatusText`
/// names (as istiod checks it).
fn is_retry_condition(condition: &str) -> bool {
    const NAMED_STATUS_CODES: [std::ops::RangeInclusive<u16>; 12] = [
        100..=103,
        200..=208,
        226..=226,
        300..=305,
        307..=308,
        400..=418,
        421..=426,
        428..=429,
        431..=431,
        451..=451,
        500..=508,
        510..=511,
    ];
    RETRY_ON_CONDITIONS.contains(&condition)
        || condition.parse::<u16>().is_ok_and(|code| NAMED_STATUS_CODES.iter().any(|r| r.contains(&code)))
}

fn check_route(policy: &RoutingPolicy, rule: &Rule, base: &str, findings: &mut Findings) {
    if rule.route.is_empty() {
        findings.error(format!("{base}.route"), "send traffic to at least one subset");
        return;
    }
    let mut total = Some(0u32);
    for share in &rule.route {
        let field = format!("{base}.route.{}", share.subset);
        check_subset_defined(policy, &share.subset, &field, findings);
        match share.weight.percent() {
            Some(weight) => total = total.map(|t| t + weight),
            None => {
                total = None;
                findings.error(field, weight_problem(&share.weight.0));
            }
        }
    }
    if let Some(total) = total.filter(|t| *t != 100) {
        findings.error(format!("{base}.route"), format!("weights add up to {total}; they must add up to 100"));
    }
}

fn weight_problem(weight: &serde_json::Number) -> &'static str {
    if weight.as_f64().is_some_and(|w| w < 0.0) {
        "a weight cannot be negative"
    } else if weight.as_u64().is_none() {
        "a weight must be a whole number from 0 to 100"
    } else {
        "a weight cannot be more than 100"
    }
}

fn check_subset_defined(policy: &RoutingPolicy, subset: &str, field: &str, findings: &mut Findings) {
    if subset != ALL_PODS && policy.subset(subset).is_none() {
        findings.error(field, "this subset is not defined; add it under subsets first");
    }
}

fn check_match(entry: &Match, base: &str, findings: &mut Findings) {
    if let Some(uri) = &entry.uri {
        check_string_match(uri, &format!("{base}.uri"), findings);
    }
    if let Some(method) = &entry.method {
        check_string_match(method, &format!("{base}.method"), findings);
    }
    for (name, m) in entry.headers.iter().flat_map(|h| h.iter()) {
        let field = format!("{base}.headers.{name}");
        if !is_lowercase_token(name) {
            findings.error(&field, "header names must be lowercase HTTP tokens (letters, digits, '-')");
        }
        check_string_match(m, &field, findings);
    }
    for (name, m) in entry.query_params.iter().flat_map(|q| q.iter()) {
        let field = format!("{base}.queryParams.{name}");
        if name.is_empty() {
            findings.error(&field, "a query parameter needs a name");
        }
        check_string_match(m, &field, findings);
    }
}

/// Envoy's (and istiod's) limit on a regex's length.
const MAX_REGEX_LENGTH: usize = 1024;

fn check_string_match(m: &StringMatch, field: &str, findings: &mut Findings) {
    match m {
        StringMatch::Regex(pattern) if pattern.is_empty() => findings.error(field, "a regex cannot be empty"),
        StringMatch::Regex(pattern) if pattern.len() > MAX_REGEX_LENGTH => {
            findings.error(field, format!("a regex can be at most {MAX_REGEX_LENGTH} characters long"))
        }
        StringMatch::Regex(pattern) => {
            if let Some(problem) = regex_problem(pattern) {
                findings.error(field, problem);
            }
        }
        // Only a URI may match every value with an empty prefix (istiod refuses it elsewhere).
        StringMatch::Prefix(prefix) if prefix.is_empty() && !field.ends_with(".uri") => {
            findings.error(field, "a prefix cannot be empty")
        }
        _ => {}
    }
}

/// Why `pattern` is not a valid RE2 (Envoy) regex, if it is not.
pub fn regex_problem(pattern: &str) -> Option<String> {
    let error = super::user_regex::compile(pattern).err()?;
    if let regex::Error::CompiledTooBig(limit) = error {
        return Some(format!("the regex is too large: compiled it would exceed {} KiB", limit / 1024));
    }
    let error = error.to_string();
    Some(if error.contains("look-around") {
        "look-ahead and look-behind are not supported by Envoy's RE2 regex engine".to_string()
    } else if error.contains("backreference") {
        "backreferences like \\1 are not supported by Envoy's RE2 regex engine".to_string()
    } else {
        let detail = error.lines().find_map(|l| l.trim().strip_prefix("error: ")).unwrap_or("invalid syntax");
        format!("not a valid regex: {detail}")
    })
}

fn check_fault(rule: &Rule, base: &str, findings: &mut Findings) {
    let Some(fault) = &rule.fault else { return };
    if let Some(delay) = &fault.delay {
        match &delay.fixed_delay {
            Some(d) => check_duration(d, &format!("{base}.fault.delay.fixedDelay"), findings),
            None if !delay.other.contains_key("exponentialDelay") => {
                findings.error(format!("{base}.fault.delay.fixedDelay"), "a delay needs a duration like 5s");
            }
            None => {}
        }
        check_percentage(delay.percentage, &format!("{base}.fault.delay.percentage"), findings);
    }
    if let Some(abort) = &fault.abort {
        let field = format!("{base}.fault.abort.httpStatus");
        match abort.http_status {
            Some(status) if !(200..=599).contains(&status) => {
                findings.error(field, "must be an HTTP status from 200 to 599")
            }
            None if !abort.other.contains_key("grpcStatus") && !abort.other.contains_key("http2Error") => {
                findings.error(field, "an abort needs a status code")
            }
            _ => {}
        }
        check_percentage(abort.percentage, &format!("{base}.fault.abort.percentage"), findings);
    }
}

fn check_percentage(percentage: Option<f64>, field: &str, findings: &mut Findings) {
    if percentage.is_some_and(|p| !(0.0..=100.0).contains(&p)) {
        findings.error(field, "must be a percentage from 0 to 100");
    }
}

fn check_duration(text: &str, field: &str, findings: &mut Findings) {
    match parse_duration_seconds(text) {
        None => findings.error(field, "must be a duration like 1s, 500ms or 1.5s"),
        Some(seconds) if seconds < 0.001 => findings.error(field, "must be at least 1ms"),
        // istiod refuses finer durations: Envoy's timers count whole milliseconds.
        Some(seconds) if ((seconds * 1e6).round() as i64) % 1000 != 0 => {
            findings.error(field, "must be a whole number of milliseconds, like 1.5s or 250ms")
        }
        Some(_) => {}
    }
}

/// Parses an Istio (Go-style) duration such as `1s`, `500ms`, `1.5s`, `1m30s` into seconds.
pub fn parse_duration_seconds(text: &str) -> Option<f64> {
    const UNITS: [(&str, f64); 7] =
        [("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("s", 1.0), ("m", 60.0), ("h", 3600.0)];
    let mut rest = text;
    let mut total = 0.0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let (unit, scale) =
            UNITS.iter().find(|(unit, _)| rest.starts_with(unit) && !rest[unit.len()..].starts_with('s'))?;
        total += number * scale;
        rest = &rest[unit.len()..];
    }
    Some(total)
}

/// Rules after one that matches everything can never match.
fn check_reachability(rules: &[Rule], findings: &mut Findings) {
    let catch_all = rules.iter().position(|r| r.matches.as_ref().is_none_or(|m| m.is_empty()));
    if let Some(catch_all) = catch_all {
        for index in catch_all + 1..rules.len() {
            findings.warning(
                format!("rules[{index}]"),
                format!("never used: rule {} already matches every request", catch_all + 1),
            );
        }
    }
}

fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
}

fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns_label)
}

fn is_lowercase_token(name: &str) -> bool {
    !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_label_key(key: &str) -> bool {
    let (prefix, name) = key.rsplit_once('/').map_or((None, key), |(p, n)| (Some(p), n));
    prefix.is_none_or(is_dns_subdomain) && !name.is_empty() && is_label_value(name)
}

fn is_label_value(value: &str) -> bool {
    let bytes = value.as_bytes();
    bytes.is_empty()
        || (bytes.len() <= 63
            && bytes.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(b))
            && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
            && bytes.last().is_some_and(u8::is_ascii_alphanumeric))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> ValidationContext {
        ValidationContext {
            services: BTreeSet::from(["recommendation".to_string()]),
            deployed_versions: vec![
                BTreeMap::from([("app".into(), "recommendation".into()), ("version".into(), "v1".into())]),
                BTreeMap::from([("app".into(), "recommendation".into()), ("version".into(), "v2".into())]),
            ],
            gateway_api: false,
            gateway_api_retries: false,
        }
    }

    fn findings(rules: serde_json::Value) -> Vec<FieldError> {
        let policy: RoutingPolicy = serde_json::from_value(json!({"host":"recommendation",
            "subsets":{"version-v1":{"version":"v1"},"version-v2":{"version":"v2"}},"rules":rules}))
        .unwrap();
        validate(&policy, &ctx())
    }

    fn fields(rules: serde_json::Value) -> Vec<(String, Severity)> {
        findings(rules).into_iter().map(|f| (f.field, f.severity)).collect()
    }

    fn error(field: &str) -> (String, Severity) {
        (field.to_string(), Severity::Error)
    }

    #[test]
    fn valid_tutorial_policy_has_no_findings() {
        let rules = json!([
            {"match":[{"headers":{"baggage-user-agent":{"regex":".*Firefox.*"}}}],"route":{"version-v2":100}},
            {"route":{"version-v1":90,"version-v2":10},"timeout":"1.5s","retries":{"attempts":3,"perTryTimeout":"500ms"},
             "fault":{"delay":{"fixedDelay":"7s","percentage":50},"abort":{"httpStatus":503,"percentage":10}},
             "mirror":{"subset":"version-v2","percentage":100}}]);
        assert_eq!(findings(rules), vec![]);
    }

    #[test]
    fn totals_of_99_and_101_are_errors() {
        assert_eq!(fields(json!([{"route":{"version-v1":90,"version-v2":9}}])), vec![error("rules[0].route")]);
        let found = findings(json!([{"route":{"version-v1":90,"version-v2":11}}]));
        assert_eq!(found[0].message, "weights add up to 101; they must add up to 100");
    }

    #[test]
    fn negative_fractional_and_large_weights_are_errors_on_the_subset() {
        let found = findings(json!([{"route":{"version-v1":110,"version-v2":-10}}]));
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].field, "rules[0].route.version-v1");
        assert_eq!(found[1].message, "a weight cannot be negative");
        let found = findings(json!([{"route":{"version-v1":89.5,"version-v2":10.5}}]));
        assert_eq!(found[0].message, "a weight must be a whole number from 0 to 100");
    }

    #[test]
    fn unknown_subsets_in_route_and_mirror() {
        let rules = json!([{"route":{"version-v3":100},"mirror":{"subset":"nope"}}]);
        assert_eq!(fields(rules), vec![error("rules[0].route.version-v3"), error("rules[0].mirror.subset")]);
        assert_eq!(fields(json!([{"route":{"*":100}}])), vec![]);
    }

    #[test]
    fn bad_regex_lookaround_and_backreference() {
        let regex = |r: &str| {
            findings(json!([{"match":[{"headers":{"x-a":{"regex":r}}}],"route":{"version-v1":100}}]))[0].message.clone()
        };
        assert!(regex("(").starts_with("not a valid regex"), "{}", regex("("));
        assert!(regex("foo(?=bar)").contains("look-ahead"));
        assert!(regex("(?<!x)y").contains("look-ahead and look-behind"));
        assert!(regex(r"(a)\1").contains("backreferences"));
    }

    #[test]
    fn uppercase_header_names_are_errors() {
        let rules = json!([{"match":[{"headers":{"User-Agent":{"exact":"x"}}}],"route":{"version-v1":100}}]);
        assert_eq!(fields(rules), vec![error("rules[0].match[0].headers.User-Agent")]);
    }

    #[test]
    fn script_names_are_rejected() {
        let policy: RoutingPolicy = serde_json::from_value(json!({"host":"<script>",
            "subsets":{"<script>":{"version":"v1"}},"rules":[]}))
        .unwrap();
        let found = validate(&policy, &ctx());
        assert_eq!(found[0].field, "host");
        assert_eq!(found[1].field, "subsets.<script>");
        assert!(has_errors(&found));
    }

    #[test]
    fn unknown_service_and_fqdn_host() {
        let mut policy = RoutingPolicy::new("nope");
        assert_eq!(validate(&policy, &ctx())[0].message, "there is no Service named nope in this namespace");
        policy.host = "recommendation.tutorial.svc.cluster.local".into();
        assert_eq!(validate(&policy, &ctx()), vec![]);
    }

    #[test]
    fn subset_selecting_nothing_is_a_warning() {
        let policy: RoutingPolicy = serde_json::from_value(json!({"host":"recommendation",
            "subsets":{"version-v3":{"version":"v3"}},"rules":[{"route":{"version-v3":100}}]}))
        .unwrap();
        let found = validate(&policy, &ctx());
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].field.as_str(), found[0].severity), ("subsets.version-v3", Severity::Warning));
        assert!(!has_errors(&found));
    }

    #[test]
    fn durations_percentages_status_and_attempts() {
        let rules = json!([{"route":{"version-v1":100},"timeout":"1 second",
            "retries":{"attempts":-1,"perTryTimeout":"0s"},
            "fault":{"delay":{"fixedDelay":"5","percentage":101},"abort":{"httpStatus":700,"percentage":-1}},
            "mirror":{"subset":"version-v2","percentage":150}}]);
        assert_eq!(
            fields(rules),
            vec![
                error("rules[0].timeout"),
                error("rules[0].retries.attempts"),
                error("rules[0].retries.perTryTimeout"),
                error("rules[0].fault.delay.fixedDelay"),
                error("rules[0].fault.delay.percentage"),
                error("rules[0].fault.abort.httpStatus"),
                error("rules[0].fault.abort.percentage"),
                error("rules[0].mirror.percentage"),
            ]
        );
    }

    #[test]
    fn duration_parsing() {
        assert_eq!(parse_duration_seconds("1s"), Some(1.0));
        assert_eq!(parse_duration_seconds("500ms"), Some(0.5));
        assert_eq!(parse_duration_seconds("1.5s"), Some(1.5));
        assert_eq!(parse_duration_seconds("1m30s"), Some(90.0));
        assert_eq!(parse_duration_seconds("7.000s"), Some(7.0));
        for bad in ["", "s", "1", "1x", "-1s", "1ss", "1.2.3s"] {
            assert_eq!(parse_duration_seconds(bad), None, "{bad}");
        }
    }

    #[test]
    fn empty_route_unknown_fields_and_unreachable_rules() {
        let rules = json!([{"route":{}},{"route":{"version-v1":100},"rotue":{}}]);
        assert_eq!(
            fields(rules),
            vec![error("rules[0].route"), error("rules[1].rotue"), ("rules[1]".to_string(), Severity::Warning)]
        );
    }

    #[test]
    fn retry_conditions_are_the_ones_istiod_accepts() {
        let rule = |retry_on: &str| json!([{"route":{"version-v1":100},"retries":{"attempts":3,"retryOn":retry_on}}]);
        for good in ["5xx", "connect-failure,refused-stream,503", "gateway-error,unavailable,429"] {
            assert_eq!(fields(rule(good)), vec![], "{good}");
        }
        for bad in ["not-a-condition", "5xx,,reset", "999", "5XX", "5xx, reset"] {
            assert_eq!(fields(rule(bad)), vec![error("rules[0].retries.retryOn")], "{bad}");
        }
        let found = findings(rule("5xx,bogus"));
        assert!(found[0].message.starts_with("not a retry condition Istio knows: \"bogus\";"), "{}", found[0].message);
    }

    #[test]
    fn zero_attempts_cannot_configure_retries() {
        let rules = json!([{"route":{"version-v1":100},"retries":{"attempts":0,"perTryTimeout":"2s"}}]);
        assert_eq!(fields(rules), vec![error("rules[0].retries.attempts")]);
        assert_eq!(fields(json!([{"route":{"version-v1":100},"retries":{"attempts":0}}])), vec![]);
    }

    #[test]
    fn durations_need_whole_milliseconds() {
        let rule = |timeout: &str| json!([{"route":{"version-v1":100},"timeout":timeout}]);
        for good in ["1s", "1.000s", "250ms", "1m30s", "0.001s"] {
            assert_eq!(fields(rule(good)), vec![], "{good}");
        }
        for bad in ["1.5ms", "1500us", "0.0005s", "10", "1x", ""] {
            assert_eq!(fields(rule(bad)), vec![error("rules[0].timeout")], "{bad}");
        }
    }

    #[test]
    fn string_matches_istiod_would_refuse() {
        let header = |m: serde_json::Value| json!([{"match":[{"headers":{"x-user":m}}],"route":{"version-v1":100}}]);
        let field = "rules[0].match[0].headers.x-user";
        assert_eq!(fields(header(json!({"regex": ""}))), vec![error(field)]);
        assert_eq!(fields(header(json!({"regex": "a".repeat(1025)}))), vec![error(field)]);
        assert_eq!(fields(header(json!({"regex": "a".repeat(1024)}))), vec![]);
        assert_eq!(fields(header(json!({"prefix": ""}))), vec![error(field)]);
        let any_uri = json!([{"match":[{"uri":{"prefix":""}}],"route":{"version-v1":100}}]);
        assert_eq!(fields(any_uri), vec![]);
    }
}
