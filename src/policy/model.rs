//! The routing policy of one host, as the JSON API and the forms see it.
//!
//! JSON shape (camelCase; `subsets` and `route` are objects that keep insertion order):
//! `{"host":"recommendation","subsets":{"version-v1":{"version":"v1"}},
//!   "rules":[{"match":[{"headers":{"baggage-user-agent":{"regex":".*Firefox.*"}}}],
//!             "route":{"version-v1":100},"timeout":"1s"}]}`
use crate::istio::{OrderedMap, Unmodelled};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Number;
use std::collections::BTreeMap;
use std::fmt;

/// Route key meaning "the host's pods without a subset" (an Istio destination without `subset`).
///
/// Istio subset names are DNS labels, so `*` can never collide with a real subset.
pub const ALL_PODS: &str = "*";

/// Routing policy for one host: its subsets and its ordered HTTP rules.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RoutingPolicy {
    /// The Service host (short name, e.g. `recommendation`); the API takes it from the URL
    /// when the body leaves it out.
    #[serde(default)]
    pub host: String,
    /// Subsets as defined in the DestinationRule, in order.
    #[serde(default, with = "subsets_as_object")]
    pub subsets: Vec<Subset>,
    /// HTTP rules in order; the first matching rule wins.
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// A named group of pods selected by labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Subset {
    /// Subset name (an RFC 1123 label).
    pub name: String,
    /// Pod labels selecting the subset.
    pub labels: BTreeMap<String, String>,
}

/// One HTTP rule: conditions, weighted subsets and per-rule behaviour.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    /// Match entries (ORed); absent means the rule matches every request.
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<Vec<Match>>,
    /// Weighted subsets in order; `*` means pods without a subset.
    #[serde(default, with = "shares_as_object")]
    pub route: Vec<Share>,
    /// Request timeout, an Istio duration like `1s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Retry policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<Retries>,
    /// Fault injection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fault: Option<Fault>,
    /// Traffic mirroring to a subset of this host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<Mirror>,
    /// Unmodelled HTTP route fields (name, corsPolicy, headers, rewrite, ...), kept verbatim.
    #[serde(flatten)]
    pub other: Unmodelled,
}

/// A subset and the share of a rule's traffic it receives.
#[derive(Clone, Debug, PartialEq)]
pub struct Share {
    /// Subset name, or [`ALL_PODS`].
    pub subset: String,
    /// Share in percent.
    pub weight: Weight,
}

/// A route weight as the client sent it, so that negative or fractional values can be
/// reported with their field path by validation rather than failing deserialization.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Weight(pub Number);

impl Weight {
    /// The weight as a whole percentage, when it is an integer from 0 to 100.
    pub fn percent(&self) -> Option<u32> {
        self.0.as_u64().filter(|w| *w <= 100).and_then(|w| u32::try_from(w).ok())
    }
}

impl From<u32> for Weight {
    fn from(percent: u32) -> Self {
        Weight(Number::from(percent))
    }
}

impl fmt::Display for Weight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One match entry; all its conditions must hold (AND).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Match {
    /// Condition on the path (query string excluded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<StringMatch>,
    /// Condition on the HTTP method.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<StringMatch>,
    /// Conditions on headers (lowercase names).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers: Option<OrderedMap<StringMatch>>,
    /// Conditions on query parameters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_params: Option<OrderedMap<StringMatch>>,
    /// Unmodelled match fields (sourceLabels, port, gateways, ...), kept verbatim.
    #[serde(flatten)]
    pub other: Unmodelled,
}

/// A string condition, written `{"exact": ".."}`, `{"prefix": ".."}` or `{"regex": ".."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StringMatch {
    /// The whole value equals this.
    Exact(String),
    /// The value starts with this.
    Prefix(String),
    /// This RE2 regex matches the whole value.
    Regex(String),
}

/// Retry policy of a rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Retries {
    /// Number of retries; 0 disables retries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<i32>,
    /// Timeout per attempt, an Istio duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_try_timeout: Option<String>,
    /// Comma-separated retry conditions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_on: Option<String>,
    /// Unmodelled retry fields, kept verbatim.
    #[serde(flatten)]
    pub other: Unmodelled,
}

/// Fault injection of a rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Fault {
    /// Injected delay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Delay>,
    /// Injected abort.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abort: Option<Abort>,
    /// Unmodelled fault fields, kept verbatim.
    #[serde(flatten)]
    pub other: Unmodelled,
}

/// An injected delay.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Delay {
    /// Delay duration, an Istio duration like `7s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fixed_delay: Option<String>,
    /// Percentage of requests delayed (0–100).
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "whole_as_integer")]
    pub percentage: Option<f64>,
    /// Unmodelled delay fields (e.g. the deprecated integer `percent`), kept verbatim.
    #[serde(flatten)]
    pub other: Unmodelled,
}

/// An injected abort.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Abort {
    /// HTTP status returned (200–599).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<i32>,
    /// Percentage of requests aborted (0–100).
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "whole_as_integer")]
    pub percentage: Option<f64>,
    /// Unmodelled abort fields (grpcStatus, ...), kept verbatim.
    #[serde(flatten)]
    pub other: Unmodelled,
}

/// Mirroring of a rule's traffic to a subset of the same host.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mirror {
    /// Subset receiving the copy, or [`ALL_PODS`].
    pub subset: String,
    /// Percentage of traffic mirrored (0–100); absent means 100.
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "whole_as_integer")]
    pub percentage: Option<f64>,
}

impl Rule {
    /// A rule without conditions sending `shares` (subset, percent) in order.
    pub fn weighted(shares: &[(&str, u32)]) -> Rule {
        Rule { route: shares.iter().map(|(subset, weight)| Share::new(subset, *weight)).collect(), ..Rule::default() }
    }
}

impl Share {
    /// A share of `weight` percent to `subset`.
    pub fn new(subset: &str, weight: u32) -> Share {
        Share { subset: subset.to_string(), weight: Weight::from(weight) }
    }
}

impl RoutingPolicy {
    /// A policy for `host` with no subsets and no rules.
    pub fn new(host: &str) -> RoutingPolicy {
        RoutingPolicy { host: host.to_string(), subsets: Vec::new(), rules: Vec::new() }
    }

    /// The subset named `name`, if defined.
    pub fn subset(&self, name: &str) -> Option<&Subset> {
        self.subsets.iter().find(|s| s.name == name)
    }

    /// How people call a subset: its `version` label when present (`v1`), else its name.
    pub fn display_name(&self, subset: &str) -> String {
        if subset == ALL_PODS {
            return "all pods".to_string();
        }
        self.subset(subset).and_then(|s| s.labels.get("version")).cloned().unwrap_or_else(|| subset.to_string())
    }
}

impl Subset {
    /// A subset `name` selecting pods with `version: <version>`.
    pub fn version(name: &str, version: &str) -> Subset {
        Subset { name: name.to_string(), labels: BTreeMap::from([("version".to_string(), version.to_string())]) }
    }
}

fn whole_as_integer<S: Serializer>(value: &Option<f64>, serializer: S) -> Result<S::Ok, S::Error> {
    match value {
        Some(v) => crate::istio::serialize_number(*v, serializer),
        None => serializer.serialize_none(),
    }
}

/// `subsets` as `{"name": {labels}}` in order.
mod subsets_as_object {
    use super::*;

    pub fn serialize<S: Serializer>(subsets: &[Subset], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(subsets.iter().map(|s| (&s.name, &s.labels)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Subset>, D::Error> {
        let map = OrderedMap::<BTreeMap<String, String>>::deserialize(deserializer)?;
        Ok(map.0.into_iter().map(|(name, labels)| Subset { name, labels }).collect())
    }
}

/// `route` as `{"subset": weight}` in order.
mod shares_as_object {
    use super::*;

    pub fn serialize<S: Serializer>(shares: &[Share], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(shares.iter().map(|s| (&s.subset, &s.weight)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Share>, D::Error> {
        let map = OrderedMap::<Weight>::deserialize(deserializer)?;
        Ok(map.0.into_iter().map(|(subset, weight)| Share { subset, weight }).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tutorial_json() -> serde_json::Value {
        json!({"host":"recommendation",
            "subsets":{"version-v1":{"version":"v1"},"version-v2":{"version":"v2"}},
            "rules":[
              {"match":[{"headers":{"baggage-user-agent":{"regex":".*Firefox.*"}}}],"route":{"version-v2":100}},
              {"route":{"version-v1":90,"version-v2":10},"timeout":"1s",
               "retries":{"attempts":3,"perTryTimeout":"2s"},
               "fault":{"delay":{"fixedDelay":"7s","percentage":50},"abort":{"httpStatus":503,"percentage":10}},
               "mirror":{"subset":"version-v2","percentage":100}}]})
    }

    #[test]
    fn json_shape_round_trips_exactly_and_in_order() {
        let policy: RoutingPolicy = serde_json::from_value(tutorial_json()).unwrap();
        assert_eq!(policy.subsets[1], Subset::version("version-v2", "v2"));
        assert_eq!(policy.rules[1].route, vec![Share::new("version-v1", 90), Share::new("version-v2", 10)]);
        let text = serde_json::to_string(&policy).unwrap();
        assert_eq!(text, serde_json::to_string(&tutorial_json()).unwrap());
    }

    #[test]
    fn negative_and_fractional_weights_deserialize_for_validation() {
        let policy: RoutingPolicy =
            serde_json::from_value(json!({"host":"r","rules":[{"route":{"a":-5,"b":10.5}}]})).unwrap();
        assert_eq!(policy.rules[0].route[0].weight.percent(), None);
        assert_eq!(policy.rules[0].route[1].weight.percent(), None);
        assert_eq!(Weight::from(100).percent(), Some(100));
        assert_eq!(Weight(Number::from(101)).percent(), None);
    }

    #[test]
    fn duplicate_subset_in_route_is_rejected() {
        let err = serde_json::from_str::<RoutingPolicy>(r#"{"host":"r","rules":[{"route":{"a":50,"a":50}}]}"#);
        assert!(err.unwrap_err().to_string().contains("duplicate key `a`"));
    }

    #[test]
    fn unmodelled_rule_fields_are_kept() {
        let value = json!({"host":"r","subsets":{},"rules":[{"name":"api","corsPolicy":{"allowMethods":["GET"]},"route":{"*":100}}]});
        let policy: RoutingPolicy = serde_json::from_value(value.clone()).unwrap();
        assert_eq!(policy.rules[0].other["name"], "api");
        assert_eq!(serde_json::to_value(&policy).unwrap(), value);
    }

    #[test]
    fn display_name_prefers_version_label() {
        let mut policy = RoutingPolicy::new("r");
        policy.subsets.push(Subset::version("version-v1", "v1"));
        policy.subsets.push(Subset { name: "canary".into(), labels: BTreeMap::new() });
        assert_eq!(policy.display_name("version-v1"), "v1");
        assert_eq!(policy.display_name("canary"), "canary");
        assert_eq!(policy.display_name(ALL_PODS), "all pods");
    }
}
