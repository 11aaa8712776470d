//! Each rule of a routing policy as a bar split by destination weights: `v1 90% | v2 10%`.
use crate::policy::canary::Canary;
use crate::policy::{self, ALL_PODS, RoutingPolicy, Rule};

use super::marks::{Mark, rule_marks};

/// The bar's width in SVG units: one percent is six units.
pub const BAR_WIDTH: u32 = 600;
const UNITS_PER_PERCENT: u32 = BAR_WIDTH / 100;
/// A segment narrower than this many percent has no room for its label; the words still say it.
const LABEL_MIN_PERCENT: u32 = 12;
/// Distinct segment colours (classes `share-0` … `share-5` in app.css).
const PALETTE: usize = 6;

/// One rule: who it applies to, and its split.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleBar {
    /// 1-based, as people count rules.
    pub number: usize,
    /// `Firefox users`, `everyone`, `everyone else`.
    pub audience: String,
    pub segments: Vec<Segment>,
    /// The split in words, next to the bar (narrow segments have no label): `v1 90% · v2 10%`.
    pub split: String,
    /// Timeouts, retries, faults, a mirror and a running canary, marked beside the split.
    pub marks: Vec<Mark>,
    /// The rule in words, for `aria-label`: `rule 2, everyone else: v1 90%, v2 10%; timeout 1s`.
    pub words: String,
}

/// One destination's share of a rule, placed on the bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// `v1 90%`.
    pub label: String,
    pub percent: u32,
    pub x: u32,
    pub width: u32,
    /// The label's centre.
    pub label_x: u32,
    pub show_label: bool,
    /// Colour class, the same for a subset in every bar of the policy.
    pub class: String,
}

/// A titled group of bars (the live rules, or a preview's before and after).
#[derive(Debug, Clone, PartialEq)]
pub struct BarSet {
    /// Element id of the group.
    pub id: String,
    pub heading: String,
    pub bars: Vec<RuleBar>,
}

impl BarSet {
    /// The bars of `policy`, the rules that carry `canary`'s weights marked with it.
    pub fn of(id: &str, heading: &str, policy: Option<&RoutingPolicy>, canary: Option<&Canary>) -> BarSet {
        let bars = policy.map(|policy| rule_bars(policy, canary)).unwrap_or_default();
        BarSet { id: id.to_owned(), heading: heading.to_owned(), bars }
    }
}

/// The bars of every HTTP rule, in the order Envoy tries them.
pub fn rule_bars(policy: &RoutingPolicy, canary: Option<&Canary>) -> Vec<RuleBar> {
    policy.rules.iter().enumerate().map(|(index, rule)| rule_bar(policy, index, rule, canary)).collect()
}

fn rule_bar(policy: &RoutingPolicy, index: usize, rule: &Rule, canary: Option<&Canary>) -> RuleBar {
    let audience = policy::audience(index, rule);
    let mut x = 0;
    let segments: Vec<Segment> = rule
        .route
        .iter()
        .map(|share| {
            // Validation refuses other weights; a bar shows what it can and says 0 otherwise.
            let percent = share.weight.percent().unwrap_or(0);
            let width = percent * UNITS_PER_PERCENT;
            let segment = Segment {
                label: format!("{} {percent}%", policy.display_name(&share.subset)),
                percent,
                x,
                width,
                label_x: x + width / 2,
                show_label: percent >= LABEL_MIN_PERCENT,
                class: colour_class(policy, &share.subset),
            };
            x += width;
            segment
        })
        .collect();
    let labels: Vec<&str> = segments.iter().map(|s| s.label.as_str()).collect();
    let marks = rule_marks(policy, rule, canary);
    let mut words = format!("rule {}, {audience}: {}", index + 1, labels.join(", "));
    if !marks.is_empty() {
        let marked: Vec<&str> = marks.iter().map(|m| m.text.as_str()).collect();
        words = format!("{words}; {}", marked.join(", "));
    }
    RuleBar { number: index + 1, audience, split: labels.join(" · "), segments, marks, words }
}

/// A subset's colour follows its place among the policy's subsets, so v2 looks the same in
/// every rule and in a preview's before and after.
fn colour_class(policy: &RoutingPolicy, subset: &str) -> String {
    if subset == ALL_PODS {
        return "share-all".into();
    }
    match policy.subsets.iter().position(|s| s.name == subset) {
        Some(position) => format!("share-{}", position % PALETTE),
        None => "share-undefined".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn firefox_then_split(v1: u32, v2: u32) -> RoutingPolicy {
        serde_json::from_value(json!({"host":"recommendation",
            "subsets":{"version-v1":{"version":"v1"},"version-v2":{"version":"v2"}},
            "rules":[{"match":[{"headers":{"baggage-user-agent":{"regex":".*Firefox.*"}}}],"route":{"version-v2":100}},
                     {"route":{"version-v1":v1,"version-v2":v2}}]}))
        .unwrap()
    }

    #[test]
    fn a_split_is_drawn_in_proportion_and_said_in_words() {
        let bars = rule_bars(&firefox_then_split(90, 10), None);
        let split = &bars[1];
        assert_eq!(split.audience, "everyone else");
        assert_eq!(split.words, "rule 2, everyone else: v1 90%, v2 10%");
        assert_eq!(split.split, "v1 90% · v2 10%");
        let geometry: Vec<(u32, u32)> = split.segments.iter().map(|s| (s.x, s.width)).collect();
        assert_eq!(geometry, [(0, 540), (540, 60)]);
        assert!(split.segments[0].show_label && !split.segments[1].show_label, "10% is too narrow for a label");
        assert_eq!(split.segments[0].label_x, 270);
    }

    #[test]
    fn header_rules_name_their_audience() {
        let bars = rule_bars(&firefox_then_split(75, 25), None);
        assert_eq!(bars[0].number, 1);
        assert_eq!(bars[0].audience, "Firefox users");
        assert_eq!(bars[0].words, "rule 1, Firefox users: v2 100%");
        assert_eq!((bars[0].segments[0].x, bars[0].segments[0].width), (0, BAR_WIDTH));
        assert_eq!(bars[1].words, "rule 2, everyone else: v1 75%, v2 25%");
    }

    #[test]
    fn a_subset_keeps_its_colour_across_rules() {
        let bars = rule_bars(&firefox_then_split(50, 50), None);
        assert_eq!(bars[0].segments[0].class, "share-1", "v2 in the Firefox rule");
        assert_eq!(bars[1].segments[1].class, "share-1", "v2 in the split");
        assert_eq!(bars[1].segments[0].class, "share-0");
    }

    #[test]
    fn no_policy_or_no_rules_has_no_bars() {
        assert!(BarSet::of("before", "Before", None, None).bars.is_empty());
        let everyone = RoutingPolicy { rules: vec![Rule::weighted(&[(ALL_PODS, 100)])], ..RoutingPolicy::new("r") };
        let bars = rule_bars(&everyone, None);
        assert_eq!(bars[0].words, "rule 1, everyone: all pods 100%");
        assert_eq!(bars[0].segments[0].class, "share-all");
    }

    #[test]
    fn settings_and_a_running_canary_are_marked_and_said() {
        let mut policy = firefox_then_split(75, 25);
        policy.rules[1].timeout = Some("1s".into());
        let canary = Canary::start(&policy, "version-v1", "version-v2", &[25, 50]).unwrap();
        let bars = rule_bars(&policy, Some(&canary));
        assert!(bars[0].marks.is_empty(), "the Firefox rule carries no canary");
        let marks: Vec<&str> = bars[1].marks.iter().map(|m| m.class).collect();
        assert_eq!(marks, ["mark-timeout", "mark-canary"]);
        assert_eq!(bars[1].words, "rule 2, everyone else: v1 75%, v2 25%; timeout 1s, canary v2 25%, step 1/3");
    }
}
