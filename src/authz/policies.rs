//! The team file's `policies:`: rules a namespace's changes follow whoever makes them.
//!
//! ```yaml
//! policies:
//!   - namespaces: [prod]
//!     approval: {required: true}     # another person who may make the change approves it
//!     freezes:
//!       - {from: "2026-12-24T00:00:00Z", to: "2026-12-27T00:00:00Z", reason: "holidays"}
//! ```
use jiff::Timestamp;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamespacePolicy {
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub approval: Approval,
    #[serde(default)]
    pub freezes: Vec<Freeze>,
}

/// Two-person approval of the namespace's changes.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    #[serde(default)]
    pub required: bool,
}

/// A change freeze: from `from` (inclusive) to `to` (exclusive).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Freeze {
    pub from: Timestamp,
    pub to: Timestamp,
    pub reason: String,
}

impl Freeze {
    pub fn covers(&self, at: Timestamp) -> bool {
        self.from <= at && at < self.to
    }

    /// `2026-12-24T00:00:00Z – 2026-12-27T00:00:00Z (holidays)`.
    pub fn describe(&self) -> String {
        format!("{} – {} ({})", self.from, self.to, self.reason)
    }
}

impl NamespacePolicy {
    fn covers(&self, namespace: &str) -> bool {
        self.namespaces.iter().any(|ns| ns == "*" || ns == namespace)
    }

    /// Why the policy could never work as written: a freeze that ends before it starts, or
    /// has no reason to show.
    pub fn problem(&self) -> Option<String> {
        for freeze in &self.freezes {
            if freeze.to <= freeze.from {
                return Some(format!(
                    "freeze {:?} ends at {}, not after it starts ({})",
                    freeze.reason, freeze.to, freeze.from
                ));
            }
            if freeze.reason.trim().is_empty() {
                return Some(format!("the freeze from {} has no reason; the refusals name it", freeze.from));
            }
        }
        if self.namespaces.is_empty() {
            return Some("a policy names no namespaces".into());
        }
        None
    }
}

/// Whether a policy holds `namespace`'s changes for a second person's approval.
pub fn approval_required(policies: &[NamespacePolicy], namespace: &str) -> bool {
    policies.iter().any(|policy| policy.covers(namespace) && policy.approval.required)
}

/// The freeze in force over `namespace` at `at` that ends last, if any.
pub fn freeze_at<'a>(policies: &'a [NamespacePolicy], namespace: &str, at: Timestamp) -> Option<&'a Freeze> {
    policies
        .iter()
        .filter(|policy| policy.covers(namespace))
        .flat_map(|policy| &policy.freezes)
        .filter(|freeze| freeze.covers(at))
        .max_by_key(|freeze| freeze.to)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policies(yaml: &str) -> Vec<NamespacePolicy> {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn a_freeze_covers_its_namespaces_from_its_start_until_its_end() {
        let policies = policies(
            r#"[{namespaces: [prod], freezes: [{from: "2026-12-24T00:00:00Z", to: "2026-12-27T00:00:00Z", reason: holidays}]}]"#,
        );
        let at = |text: &str| text.parse::<Timestamp>().unwrap();
        assert_eq!(freeze_at(&policies, "prod", at("2026-12-24T00:00:00Z")).unwrap().reason, "holidays");
        assert!(freeze_at(&policies, "prod", at("2026-12-27T00:00:00Z")).is_none(), "the end is not frozen");
        assert!(freeze_at(&policies, "prod", at("2026-12-23T23:59:59Z")).is_none());
        assert!(freeze_at(&policies, "staging", at("2026-12-25T00:00:00Z")).is_none());
        assert_eq!(
            freeze_at(&policies, "prod", at("2026-12-25T00:00:00Z")).unwrap().describe(),
            "2026-12-24T00:00:00Z – 2026-12-27T00:00:00Z (holidays)"
        );
    }

    #[test]
    fn a_freeze_that_ends_before_it_starts_or_has_no_reason_is_a_problem() {
        let backwards = policies(
            r#"[{namespaces: [p], freezes: [{from: "2026-12-27T00:00:00Z", to: "2026-12-24T00:00:00Z", reason: x}]}]"#,
        );
        assert!(backwards[0].problem().unwrap().contains("not after it starts"));
        let silent = policies(
            r#"[{namespaces: [p], freezes: [{from: "2026-12-24T00:00:00Z", to: "2026-12-27T00:00:00Z", reason: " "}]}]"#,
        );
        assert!(silent[0].problem().unwrap().contains("no reason"));
        assert!(
            serde_yaml_ng::from_str::<Vec<NamespacePolicy>>(
                r#"[{namespaces: [p], freezes: [{from: "christmas", to: "2026-12-24T00:00:00Z", reason: x}]}]"#
            )
            .is_err()
        );
    }
}
