//! Canary releases of one host as a pure state machine: a plan of canary weights, the
//! current step, and the transitions start → promote … → finish, with pause/resume and
//! abort. The state lives on the VirtualService in [`ANNOTATION`], so it survives restarts,
//! is shared by every signalbox replica, and `kubectl` users can read it.
use serde::{Deserialize, Serialize};

use super::Thresholds;
use super::model::{RoutingPolicy, Rule, Share};
use super::validate::FieldError;

/// The VirtualService annotation holding the canary as JSON.
pub const ANNOTATION: &str = "signalbox.io/canary";

/// The plan when none is given.
pub const DEFAULT_STEPS: [u32; 5] = [10, 25, 50, 75, 100];

/// Where a canary stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CanaryState {
    Progressing,
    Paused,
    Aborted,
    Finished,
}

/// A canary of `canary` against `stable` (both subsets of the host).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Canary {
    pub stable: String,
    pub canary: String,
    /// Canary weights in percent, strictly increasing, always ending at 100.
    pub steps: Vec<u32>,
    /// Index of the current step in `steps`.
    pub step: usize,
    pub state: CanaryState,
    /// Auto-advance (opt-in): signalbox promotes a progressing canary when these thresholds
    /// hold for their dwell time and aborts it when one fails. `None`: people decide alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub analysis: Option<Thresholds>,
}

/// Why a transition is not possible from the current state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TransitionRefused(pub String);

impl Canary {
    /// Starts at the first step, after checking the plan against the policy's subsets.
    pub fn start(policy: &RoutingPolicy, stable: &str, canary: &str, steps: &[u32]) -> Result<Canary, Vec<FieldError>> {
        let steps = normalized(if steps.is_empty() { &DEFAULT_STEPS } else { steps });
        let problems = plan_problems(policy, stable, canary, &steps);
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Canary {
            stable: stable.into(),
            canary: canary.into(),
            steps,
            step: 0,
            state: CanaryState::Progressing,
            analysis: None,
        })
    }

    /// The same canary with auto-advance on these thresholds (`None`: off).
    pub fn with_analysis(self, analysis: Option<Thresholds>) -> Result<Canary, Vec<FieldError>> {
        let problems: Vec<FieldError> = analysis
            .iter()
            .flat_map(Thresholds::problems)
            .map(|(field, message)| FieldError {
                field: format!("analysis.{field}"),
                message,
                severity: super::Severity::Error,
            })
            .collect();
        if problems.is_empty() { Ok(Canary { analysis, ..self }) } else { Err(problems) }
    }

    /// Whether signalbox itself decides this canary's next move now: auto-advance is on and
    /// the canary is progressing (a paused canary waits for a person).
    pub fn is_automatic(&self) -> bool {
        self.analysis.is_some() && self.state == CanaryState::Progressing
    }

    /// The canary takes all the traffic: the only step left is finishing.
    pub fn at_last_step(&self) -> bool {
        self.step + 1 >= self.steps.len()
    }

    /// The canary's share of traffic now.
    pub fn weight(&self) -> u32 {
        match self.state {
            CanaryState::Aborted => 0,
            CanaryState::Finished => 100,
            CanaryState::Progressing | CanaryState::Paused => self.steps.get(self.step).copied().unwrap_or(100),
        }
    }

    pub fn is_active(&self) -> bool {
        matches!(self.state, CanaryState::Progressing | CanaryState::Paused)
    }

    /// The next step (or straight to 100% with `full`). Promoting a paused canary resumes it.
    pub fn promote(&self, full: bool) -> Result<Canary, TransitionRefused> {
        self.require_active("promote")?;
        let last = self.steps.len() - 1;
        if self.step >= last {
            return Err(TransitionRefused("the canary already takes 100% of the traffic; finish it".into()));
        }
        let step = if full { last } else { self.step + 1 };
        Ok(Canary { step, state: CanaryState::Progressing, ..self.clone() })
    }

    pub fn pause(&self) -> Result<Canary, TransitionRefused> {
        match self.state {
            CanaryState::Progressing => Ok(Canary { state: CanaryState::Paused, ..self.clone() }),
            _ => Err(self.refusal("pause")),
        }
    }

    pub fn resume(&self) -> Result<Canary, TransitionRefused> {
        match self.state {
            CanaryState::Paused => Ok(Canary { state: CanaryState::Progressing, ..self.clone() }),
            _ => Err(self.refusal("resume")),
        }
    }

    /// All traffic back to stable; the canary stays deployed.
    pub fn abort(&self) -> Result<Canary, TransitionRefused> {
        self.require_active("abort")?;
        Ok(Canary { state: CanaryState::Aborted, ..self.clone() })
    }

    /// The canary becomes the new stable: 100% to it, and the plan is closed.
    pub fn finish(&self) -> Result<Canary, TransitionRefused> {
        self.require_active("finish")?;
        Ok(Canary { step: self.steps.len() - 1, state: CanaryState::Finished, ..self.clone() })
    }

    fn require_active(&self, action: &str) -> Result<(), TransitionRefused> {
        if self.is_active() { Ok(()) } else { Err(self.refusal(action)) }
    }

    fn refusal(&self, action: &str) -> TransitionRefused {
        TransitionRefused(format!("cannot {action} a canary that is {}", self.state_name()))
    }

    pub fn state_name(&self) -> &'static str {
        match self.state {
            CanaryState::Progressing => "progressing",
            CanaryState::Paused => "paused",
            CanaryState::Aborted => "aborted",
            CanaryState::Finished => "finished",
        }
    }

    /// The canary in a few words, for its mark on the pictures: `canary v2 25%, step 2/5`,
    /// with `paused` when it waits.
    pub fn mark_words(&self, policy: &RoutingPolicy) -> String {
        let paused = if self.state == CanaryState::Paused { " · paused" } else { "" };
        format!(
            "canary {} {}%, step {}/{}{paused}",
            policy.display_name(&self.canary),
            self.weight(),
            self.step + 1,
            self.steps.len()
        )
    }

    /// Whether `rule` carries this canary's weights: the rules that match every request.
    pub fn carries(&self, rule: &Rule) -> bool {
        matches_everything(rule)
    }

    /// The annotation value.
    pub fn to_annotation(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads the annotation; a malformed one is no canary. Anyone who may edit the
    /// VirtualService writes it, so its numbers are checked like a start's: steps from 1 to
    /// 100, increasing, ending at 100; a step inside them; thresholds in their ranges.
    pub fn from_annotation(text: &str) -> Option<Canary> {
        serde_json::from_str::<Canary>(text).ok().filter(Canary::is_well_formed)
    }

    fn is_well_formed(&self) -> bool {
        let steps_valid = self.steps.iter().all(|step| (1..=100).contains(step))
            && self.steps.windows(2).all(|pair| pair[0] < pair[1])
            && self.steps.last() == Some(&100);
        steps_valid && self.step < self.steps.len() && self.analysis.as_ref().is_none_or(|t| t.problems().is_empty())
    }

    /// The policy with this canary's weights on every rule that matches all requests
    /// (adding one when there is none). Rules with conditions — e.g. "Firefox users → v2" —
    /// and every other field of the policy are left as they are.
    pub fn apply_to(&self, policy: &RoutingPolicy) -> RoutingPolicy {
        let mut policy = policy.clone();
        let route = self.route();
        let mut touched = false;
        for rule in policy.rules.iter_mut().filter(|rule| matches_everything(rule)) {
            rule.route = route.clone();
            touched = true;
        }
        if !touched {
            policy.rules.push(Rule { route, ..Rule::default() });
        }
        policy
    }

    fn route(&self) -> Vec<Share> {
        let weight = self.weight();
        let shares = [(self.stable.as_str(), 100 - weight), (self.canary.as_str(), weight)];
        shares.into_iter().filter(|(_, w)| *w > 0).map(|(subset, w)| Share::new(subset, w)).collect()
    }
}

fn matches_everything(rule: &Rule) -> bool {
    rule.matches.as_ref().is_none_or(|m| m.is_empty())
}

/// The plan ending at 100, so that its last step is full promotion.
fn normalized(steps: &[u32]) -> Vec<u32> {
    let mut steps = steps.to_vec();
    if steps.last() != Some(&100) && steps.iter().all(|&s| s < 100) {
        steps.push(100);
    }
    steps
}

fn plan_problems(policy: &RoutingPolicy, stable: &str, canary: &str, steps: &[u32]) -> Vec<FieldError> {
    let mut problems = Vec::new();
    let error = |field: String, message: String| FieldError { field, message, severity: super::Severity::Error };
    for (field, subset) in [("stable", stable), ("canary", canary)] {
        if policy.subset(subset).is_none() {
            problems.push(error(field.into(), format!("subset {subset:?} is not defined in the DestinationRule")));
        }
    }
    if stable == canary {
        problems.push(error("canary".into(), "must differ from the stable subset".into()));
    }
    for (index, weight) in steps.iter().enumerate() {
        if !(1..=100).contains(weight) {
            problems.push(error(format!("steps[{index}]"), "each step is a canary weight from 1 to 100".into()));
        } else if index > 0 && *weight <= steps[index - 1] {
            problems.push(error(format!("steps[{index}]"), "steps must increase".into()));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Match, StringMatch, Subset};

    fn policy() -> RoutingPolicy {
        let mut policy = RoutingPolicy::new("recommendation");
        policy.subsets = vec![Subset::version("version-v1", "v1"), Subset::version("version-v2", "v2")];
        policy.rules = vec![Rule::weighted(&[("version-v1", 100)])];
        policy
    }

    fn start(steps: &[u32]) -> Canary {
        Canary::start(&policy(), "version-v1", "version-v2", steps).unwrap()
    }

    fn shares(policy: &RoutingPolicy, rule: usize) -> Vec<(String, u32)> {
        policy.rules[rule].route.iter().map(|s| (s.subset.clone(), s.weight.percent().unwrap())).collect()
    }

    #[test]
    fn the_tutorial_canary_goes_10_25_100_and_finishes() {
        let canary = start(&[10, 25, 100]);
        assert_eq!(canary.weight(), 10);
        let canary = canary.promote(false).unwrap();
        assert_eq!(canary.weight(), 25);
        let canary = canary.promote(false).unwrap();
        assert_eq!(canary.weight(), 100);
        assert!(canary.promote(false).is_err(), "nothing after 100%");
        let finished = canary.finish().unwrap();
        assert_eq!((finished.state, finished.weight()), (CanaryState::Finished, 100));
        assert_eq!(shares(&finished.apply_to(&policy()), 0), [("version-v2".to_string(), 100)]);
    }

    #[test]
    fn default_plan_and_plans_are_completed_to_100() {
        assert_eq!(start(&[]).steps, DEFAULT_STEPS);
        assert_eq!(start(&[10, 50]).steps, [10, 50, 100]);
        assert_eq!(start(&[10, 25]).promote(true).unwrap().weight(), 100);
    }

    #[test]
    fn weights_go_to_the_catch_all_rule_and_leave_header_rules_alone() {
        let mut base = policy();
        let mut firefox = Rule::weighted(&[("version-v2", 100)]);
        firefox.matches = Some(vec![Match {
            headers: Some(
                [("baggage-user-agent".to_string(), StringMatch::Regex(".*Firefox.*".into()))].into_iter().collect(),
            ),
            ..Match::default()
        }]);
        base.rules.insert(0, firefox.clone());
        base.rules[1].timeout = Some("1s".into());
        let routed = start(&[10, 25, 100]).apply_to(&base);
        assert_eq!(routed.rules[0], firefox);
        assert_eq!(shares(&routed, 1), [("version-v1".to_string(), 90), ("version-v2".to_string(), 10)]);
        assert_eq!(routed.rules[1].timeout.as_deref(), Some("1s"), "other rule fields are kept");
    }

    #[test]
    fn a_policy_without_a_catch_all_rule_gets_one() {
        let mut base = policy();
        base.rules.clear();
        let routed = start(&[]).apply_to(&base);
        assert_eq!(routed.rules.len(), 1);
        assert_eq!(shares(&routed, 0)[1], ("version-v2".to_string(), 10));
    }

    #[test]
    fn abort_sends_everything_back_to_stable_and_ends_the_plan() {
        let aborted = start(&[]).promote(false).unwrap().abort().unwrap();
        assert_eq!(aborted.weight(), 0);
        assert_eq!(shares(&aborted.apply_to(&policy()), 0), [("version-v1".to_string(), 100)]);
        assert!(aborted.promote(false).is_err());
        assert!(aborted.finish().is_err());
        assert!(aborted.abort().is_err());
    }

    #[test]
    fn pause_and_resume_and_promote_resumes() {
        let paused = start(&[]).pause().unwrap();
        assert_eq!(paused.weight(), 10, "pausing keeps the weight");
        assert!(paused.pause().is_err());
        assert_eq!(paused.resume().unwrap().state, CanaryState::Progressing);
        assert_eq!(paused.promote(false).unwrap().state, CanaryState::Progressing);
        assert!(start(&[]).resume().is_err());
    }

    #[test]
    fn bad_plans_name_the_field() {
        let fields = |stable: &str, canary: &str, steps: &[u32]| -> Vec<String> {
            Canary::start(&policy(), stable, canary, steps).unwrap_err().into_iter().map(|e| e.field).collect()
        };
        assert_eq!(fields("version-v1", "version-v9", &[10]), ["canary"]);
        assert_eq!(fields("version-v1", "version-v1", &[10]), ["canary"]);
        assert_eq!(fields("version-v1", "version-v2", &[10, 0]), ["steps[1]"]);
        assert_eq!(fields("version-v1", "version-v2", &[50, 25]), ["steps[1]"]);
        assert_eq!(fields("version-v1", "version-v2", &[10, 101]), ["steps[1]"]);
    }

    #[test]
    fn auto_advance_is_opt_in_checked_and_only_while_progressing() {
        let manual = start(&[10, 100]);
        assert!(!manual.is_automatic());
        assert!(!manual.to_annotation().contains("analysis"), "a manual canary's annotation stays as it was");
        let thresholds = Thresholds { min_requests: 5, ..Thresholds::default() };
        let auto = manual.with_analysis(Some(thresholds.clone())).unwrap();
        assert!(auto.is_automatic());
        assert!(!auto.pause().unwrap().is_automatic(), "a paused canary waits for a person");
        assert!(!auto.abort().unwrap().is_automatic());
        assert_eq!(Canary::from_annotation(&auto.to_annotation()), Some(auto.clone()));
        assert!(!auto.at_last_step());
        assert!(auto.promote(false).unwrap().at_last_step());
        let bad = Thresholds { min_requests: 0, ..thresholds };
        let fields: Vec<_> = start(&[]).with_analysis(Some(bad)).unwrap_err().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, ["analysis.minRequests"]);
    }

    #[test]
    fn the_annotation_round_trips_and_rejects_garbage() {
        let canary = start(&[10, 25, 100]).promote(false).unwrap();
        assert_eq!(Canary::from_annotation(&canary.to_annotation()), Some(canary));
        assert_eq!(Canary::from_annotation("{\"stable\":1}"), None);
        assert_eq!(
            Canary::from_annotation(r#"{"stable":"a","canary":"b","steps":[10],"step":3,"state":"paused"}"#),
            None
        );
    }

    /// A VirtualService editor writes the annotation by hand: numbers that would overflow
    /// `100 - weight` (a panic in a debug build) or steps out of order are no canary.
    #[test]
    fn an_annotation_with_numbers_out_of_range_is_no_canary() {
        let written = |steps: &str, step: &str| {
            format!(r#"{{"stable":"a","canary":"b","steps":{steps},"step":{step},"state":"progressing"}}"#)
        };
        for (steps, step) in
            [("[500]", "0"), ("[4294967295]", "0"), ("[0,100]", "0"), ("[50,25,100]", "0"), ("[10,50]", "0")]
        {
            assert_eq!(Canary::from_annotation(&written(steps, step)), None, "steps {steps}");
        }
        assert_eq!(Canary::from_annotation(&written("[10,100]", "18446744073709551615")), None);
        let bad_thresholds = written("[10,100]", "0").replace(
            "\"state\"",
            r#""analysis":{"minSuccessPercent":500,"maxP99Ms":1,"minRequests":1,"windowSeconds":60,"dwellSeconds":0},"state""#,
        );
        assert_eq!(Canary::from_annotation(&bad_thresholds), None);
        let fine = Canary::from_annotation(&written("[10,100]", "1")).expect("a well-formed canary");
        assert_eq!(fine.weight(), 100);
    }
}
