//! The match conditions the policy keeps verbatim (`Match::other`), decided as Istio compiles
//! them for a sidecar's Envoy (`pilot/pkg/networking/core/route/route.go`):
//! `ignoreUriCase` makes an exact or prefix path compare case-insensitively (not a regex);
//! `withoutHeaders` is a header matcher with `invert_match`, a missing header read as empty
//! (its present form: the header must be absent); `scheme` and `authority` match the
//! `:scheme` and `:authority` pseudo-headers; `port` keeps the route to that port's route
//! table; `gateways`, else `sourceLabels` and `sourceNamespace`, decide which proxies get the
//! route at all; `name` and `statPrefix` change nothing. A condition on something the request
//! does not say (who the caller is, its port or authority) is not decided: the rule
//! *depends* on it, and the answer says so instead of skipping the rule.
use std::collections::BTreeMap;

use serde_json::Value;

use super::model::StringMatch;
use super::user_regex::Regexes;
use crate::istio::Unmodelled;

/// The gateway name a sidecar's routes are generated for.
pub const MESH: &str = "mesh";

/// Who sends a request: what `sourceLabels` and `sourceNamespace` are decided on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    pub namespace: String,
    /// The caller's pod labels.
    pub labels: BTreeMap<String, String>,
}

/// Whether a match entry (or one of its conditions) takes a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Takes,
    Refuses,
    /// Not decided from the request: what it would need to say.
    Depends(String),
}

impl Decision {
    pub fn from_bool(takes: bool) -> Self {
        if takes { Decision::Takes } else { Decision::Refuses }
    }

    /// Both conditions: a refusal decides; else what either depends on.
    pub fn and(self, other: impl FnOnce() -> Decision) -> Decision {
        match self {
            Decision::Refuses => Decision::Refuses,
            Decision::Takes => other(),
            Decision::Depends(first) => match other() {
                Decision::Refuses => Decision::Refuses,
                Decision::Takes => Decision::Depends(first),
                Decision::Depends(second) => Decision::Depends(format!("{first}; {second}")),
            },
        }
    }
}

/// What a request says beyond its path, method and headers.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    pub scheme: &'a str,
    pub authority: Option<&'a str>,
    pub port: Option<u16>,
    pub caller: Option<&'a Caller>,
    pub gateway: &'a str,
}

/// Whether `ignoreUriCase` is set on the entry.
pub fn ignores_uri_case(other: &Unmodelled) -> bool {
    other.get("ignoreUriCase").and_then(Value::as_bool).unwrap_or(false)
}

/// The verbatim conditions of one entry, ANDed; `header` looks a request header up.
pub fn decide<'h>(
    other: &Unmodelled,
    context: Context<'_>,
    header: impl Fn(&str) -> Option<&'h str>,
    regexes: &mut Regexes,
) -> Decision {
    let mut decision = proxies_given_the_route_in(other, context);
    for (field, value) in other {
        let this = match field.as_str() {
            // Decided with the path, and by `proxies_given_the_route`.
            "ignoreUriCase" | "gateways" | "sourceLabels" | "sourceNamespace" => continue,
            "name" | "statPrefix" => continue,
            "withoutHeaders" => without_headers(value, &header, regexes),
            "scheme" => pseudo_header(value, Some(context.scheme), "the request's scheme", regexes),
            "authority" => {
                pseudo_header(value, context.authority, "the request's authority (give a Host header)", regexes)
            }
            "port" => match (value.as_u64(), context.port) {
                (Some(wanted), Some(port)) => Decision::from_bool(wanted == u64::from(port)),
                (Some(wanted), None) => Decision::Depends(format!("the port the request is sent to (port {wanted})")),
                (None, _) => Decision::Refuses,
            },
            other_field => Decision::Depends(format!("{other_field}, which the tester does not decide")),
        };
        decision = decision.and(|| this);
    }
    decision
}

/// Istio leaves a route out of a proxy's configuration unless one of its `gateways` is the
/// proxy's (`mesh` for a sidecar), or, without gateways, its `sourceLabels` are among the
/// proxy's labels and its `sourceNamespace` is the proxy's namespace.
fn proxies_given_the_route_in(other: &Unmodelled, context: Context<'_>) -> Decision {
    if let Some(gateways) = other.get("gateways").and_then(Value::as_array).filter(|g| !g.is_empty()) {
        return Decision::from_bool(gateways.iter().any(|g| g.as_str() == Some(context.gateway)));
    }
    let labels: BTreeMap<&str, &str> = match other.get("sourceLabels").and_then(Value::as_object) {
        Some(labels) => labels.iter().filter_map(|(k, v)| Some((k.as_str(), v.as_str()?))).collect(),
        None => BTreeMap::new(),
    };
    let namespace = other.get("sourceNamespace").and_then(Value::as_str).filter(|ns| !ns.is_empty());
    if labels.is_empty() && namespace.is_none() {
        return Decision::Takes;
    }
    let Some(caller) = context.caller else {
        let mut wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        wanted.extend(namespace.map(|ns| format!("namespace {ns}")));
        return Decision::Depends(format!("the caller (only {} get this route)", wanted.join(", ")));
    };
    let labels_held = labels.iter().all(|(k, v)| caller.labels.get(*k).map(String::as_str) == Some(*v));
    Decision::from_bool(labels_held && namespace.is_none_or(|ns| ns == caller.namespace))
}

/// Whether istiod gives the route of a match entry (its verbatim fields `other`) to a
/// sidecar of `caller`.
pub(super) fn proxies_given_the_route(other: &Unmodelled, caller: &Caller) -> bool {
    let context = Context { scheme: "http", authority: None, port: None, caller: Some(caller), gateway: MESH };
    proxies_given_the_route_in(other, context) == Decision::Takes
}

/// `withoutHeaders`: each header must not match (a missing header is read as empty), or,
/// for the present form (`{}` or regex `*`), must be absent.
fn without_headers<'h>(value: &Value, header: &impl Fn(&str) -> Option<&'h str>, regexes: &mut Regexes) -> Decision {
    let Some(conditions) = value.as_object() else { return Decision::Refuses };
    let mut decision = Decision::Takes;
    for (name, condition) in conditions {
        let this = match string_match(condition) {
            None => Decision::from_bool(header(name).is_none()),
            Some(m) => Decision::from_bool(!m.is_met(header(name).unwrap_or(""), regexes)),
        };
        decision = decision.and(|| this);
    }
    decision
}

fn pseudo_header(value: &Value, actual: Option<&str>, missing: &str, regexes: &mut Regexes) -> Decision {
    match (string_match(value), actual) {
        (None, Some(_)) => Decision::Takes,
        (Some(m), Some(actual)) => Decision::from_bool(m.is_met(actual, regexes)),
        (_, None) => Decision::Depends(missing.to_owned()),
    }
}

/// A verbatim string condition; None for the present form (`{}`, or regex `*`).
fn string_match(value: &Value) -> Option<StringMatch> {
    let text = |key: &str| value.get(key).and_then(Value::as_str).map(str::to_owned);
    match (text("exact"), text("prefix"), text("regex")) {
        (Some(exact), _, _) => Some(StringMatch::Exact(exact)),
        (_, Some(prefix), _) => Some(StringMatch::Prefix(prefix)),
        (_, _, Some(regex)) if regex != "*" => Some(StringMatch::Regex(regex)),
        _ => None,
    }
}

impl StringMatch {
    /// Whether `value` meets the condition (a regex must match the whole value).
    pub(super) fn is_met(&self, value: &str, regexes: &mut Regexes) -> bool {
        match self {
            StringMatch::Exact(expected) => value == expected,
            StringMatch::Prefix(prefix) => value.starts_with(prefix.as_str()),
            StringMatch::Regex(pattern) => regexes.is_full_match(pattern, value),
        }
    }
}
