//! The marks beside a rule's weights: its timeout, retries, faults, mirror and a running
//! canary, each a styled word on the rule's bar and on the graph's edges.
use crate::policy::canary::Canary;
use crate::policy::{self, RoutingPolicy, Rule};

/// The class of a running canary's mark.
const CANARY: &str = "mark-canary";

/// One setting as a mark: its class (`mark-timeout`, … in app.css) and its words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mark {
    pub class: &'static str,
    pub text: String,
}

/// The marks of `rule`: its settings, then the canary when the rule carries its weights.
pub fn rule_marks(policy: &RoutingPolicy, rule: &Rule, canary: Option<&Canary>) -> Vec<Mark> {
    let mut marks: Vec<Mark> = policy::settings(policy, rule)
        .into_iter()
        .map(|(setting, text)| Mark { class: setting.class(), text })
        .collect();
    if let Some(canary) = canary.filter(|c| c.is_active() && c.carries(rule)) {
        marks.push(Mark { class: CANARY, text: canary.mark_words(policy) });
    }
    marks
}

/// The marks of what reaches `subset`: the settings of every rule that sends it traffic
/// (a mirror only on the subset that gets the copies), and the canary, once each.
pub fn subset_marks(policy: &RoutingPolicy, subset: &str, canary: Option<&Canary>) -> Vec<Mark> {
    let mut marks: Vec<Mark> = Vec::new();
    for rule in &policy.rules {
        let routed = rule.route.iter().any(|s| s.subset == subset && s.weight.percent() != Some(0));
        let mirrored = rule.mirror.as_ref().is_some_and(|m| m.subset == subset);
        for mark in rule_marks(policy, rule, canary) {
            let wanted = if mark.class == policy::Setting::Mirror.class() { mirrored } else { routed };
            if wanted && !marks.contains(&mark) {
                marks.push(mark);
            }
        }
    }
    marks
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy() -> RoutingPolicy {
        serde_json::from_value(json!({"host":"recommendation",
            "subsets":{"version-v1":{"version":"v1"},"version-v2":{"version":"v2"},"version-v3":{"version":"v3"}},
            "rules":[{"match":[{"headers":{"baggage-user-agent":{"regex":".*Firefox.*"}}}],"route":{"version-v2":100},
                      "fault":{"abort":{"httpStatus":503,"percentage":10}}},
                     {"route":{"version-v1":75,"version-v2":25},"timeout":"1s","retries":{"attempts":3},
                      "mirror":{"subset":"version-v3","percentage":5}}]}))
        .unwrap()
    }

    /// `mark-timeout: timeout 1s`, ...
    fn texts(marks: &[Mark]) -> Vec<String> {
        marks.iter().map(|m| format!("{}: {}", m.class, m.text)).collect()
    }

    #[test]
    fn a_rule_is_marked_with_each_setting_and_the_canary_it_carries() {
        let policy = policy();
        let canary = Canary::start(&policy, "version-v1", "version-v2", &[25, 100]).unwrap();
        assert_eq!(texts(&rule_marks(&policy, &policy.rules[0], Some(&canary))), ["mark-abort: 10% fail with 503"]);
        let everyone_else = rule_marks(&policy, &policy.rules[1], Some(&canary));
        assert_eq!(
            texts(&everyone_else),
            [
                "mark-timeout: timeout 1s",
                "mark-retries: 3 retries",
                "mark-mirror: 5% mirrored to v3",
                "mark-canary: canary v2 25%, step 1/2",
            ]
        );
        let paused = canary.pause().unwrap();
        assert!(rule_marks(&policy, &policy.rules[1], Some(&paused)).last().unwrap().text.ends_with("· paused"));
        let aborted = canary.abort().unwrap();
        assert_eq!(rule_marks(&policy, &policy.rules[1], Some(&aborted)).len(), 3, "no mark once aborted");
    }

    #[test]
    fn a_subset_gets_the_marks_of_the_rules_that_reach_it_and_a_mirror_only_where_copies_go() {
        let policy = policy();
        let v1 = texts(&subset_marks(&policy, "version-v1", None));
        assert_eq!(v1, ["mark-timeout: timeout 1s", "mark-retries: 3 retries"]);
        let v2 = texts(&subset_marks(&policy, "version-v2", None));
        assert_eq!(v2, ["mark-abort: 10% fail with 503", "mark-timeout: timeout 1s", "mark-retries: 3 retries"]);
        assert_eq!(texts(&subset_marks(&policy, "version-v3", None)), ["mark-mirror: 5% mirrored to v3"]);
    }
}
