//! The routing page's forms, turned into the desired policy. Pure: no I/O.
use std::collections::BTreeMap;

use crate::policy::{Abort, Delay, Match, Mirror, Retries, RoutingPolicy, Rule, Share, StringMatch, Subset};
use crate::problem::FieldProblem;

/// Every field of every routing form; `action` says which form was sent.
#[derive(Debug, Default)]
pub struct RouteForm {
    pub action: String,
    /// `all`: the subset taking all traffic.
    pub subset: String,
    /// `split`: a preset like `90/10` (first two subsets), overriding the weights.
    pub preset: String,
    /// `header`: the header, its regex, and the subsets for matching and other requests.
    pub header: String,
    pub regex: String,
    pub matched_subset: String,
    pub other_subset: String,
    /// `resilience`: which rule (index), and its settings (see `set_resilience`).
    pub rule: String,
    pub settings: RuleSettings,
    /// `resilience`: the settings to remove (`timeout`, `retries`, `delay`, `abort`,
    /// `mirror`), from the ticked `remove` boxes.
    pub removes: Vec<String>,
    /// `split`: `weight.<subset>` fields, gathered from the raw form.
    pub weights: BTreeMap<String, String>,
}

/// A rule's timeout, retries, faults and mirror as form fields (empty: unset): what the
/// form sends, and what the page fills it with.
#[derive(Debug, Default, Clone)]
pub struct RuleSettings {
    pub timeout: String,
    pub retry_attempts: String,
    pub per_try_timeout: String,
    pub delay: String,
    pub delay_percent: String,
    pub abort_status: String,
    pub abort_percent: String,
    pub mirror_subset: String,
    pub mirror_percent: String,
}

impl RouteForm {
    /// Parses a urlencoded body, collecting the `weight.<subset>` fields.
    pub fn parse(body: &[u8]) -> Self {
        let pairs: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
        let mut form = from_pairs(&pairs);
        form.weights = pairs
            .iter()
            .filter_map(|(key, value)| key.strip_prefix("weight.").map(|subset| (subset.to_owned(), value.clone())))
            .collect();
        form.removes = pairs.iter().filter(|(key, _)| key == "remove").map(|(_, value)| value.clone()).collect();
        form
    }

    /// The policy the form asks for, from the live one and the deployed versions.
    pub fn desired(
        &self,
        live: &RoutingPolicy,
        deployed_versions: &[String],
    ) -> Result<RoutingPolicy, Vec<FieldProblem>> {
        let mut policy = live.clone();
        match self.action.as_str() {
            "subsets" => policy.subsets = subsets_for(deployed_versions),
            "all" => set_default_route(&mut policy, vec![Share::new(&required(&self.subset, "subset")?, 100)]),
            "split" => {
                let shares = self.split_shares(&policy)?;
                set_default_route(&mut policy, shares)
            }
            "header" => self.add_header_rule(&mut policy)?,
            "resilience" => self.set_resilience(&mut policy)?,
            other => {
                return Err(vec![FieldProblem::new("action", format!("unknown form action {other:?}"))]);
            }
        }
        Ok(policy)
    }

    fn split_shares(&self, policy: &RoutingPolicy) -> Result<Vec<Share>, Vec<FieldProblem>> {
        if !self.preset.is_empty() {
            let weights: Vec<u32> = self.preset.split('/').filter_map(|w| w.trim().parse().ok()).collect();
            let subsets: Vec<&Subset> = policy.subsets.iter().take(weights.len()).collect();
            if weights.len() != 2 || subsets.len() != 2 {
                return Err(vec![FieldProblem::new(
                    "preset",
                    "presets split between the first two subsets; define them first",
                )]);
            }
            return Ok(subsets
                .iter()
                .zip(weights)
                .filter(|(_, w)| *w > 0)
                .map(|(s, w)| Share::new(&s.name, w))
                .collect());
        }
        let mut shares = Vec::new();
        let mut problems = Vec::new();
        for subset in &policy.subsets {
            let text = self.weights.get(&subset.name).map(|w| w.trim()).unwrap_or("");
            match text {
                "" | "0" => {}
                text => match text.parse::<u32>() {
                    Ok(weight) => shares.push(Share::new(&subset.name, weight)),
                    Err(_) => problems.push(FieldProblem::new(
                        format!("weight.{}", subset.name),
                        "must be a whole number from 0 to 100",
                    )),
                },
            }
        }
        if problems.is_empty() { Ok(shares) } else { Err(problems) }
    }

    fn add_header_rule(&self, policy: &mut RoutingPolicy) -> Result<(), Vec<FieldProblem>> {
        let header = required(&self.header, "header")?;
        let regex = required(&self.regex, "regex")?;
        let matched = required(&self.matched_subset, "matched_subset")?;
        let other = required(&self.other_subset, "other_subset")?;
        let condition =
            Match { headers: Some([(header, StringMatch::Regex(regex))].into_iter().collect()), ..Match::default() };
        let header_rule =
            Rule { matches: Some(vec![condition]), route: vec![Share::new(&matched, 100)], ..Rule::default() };
        // The header rule goes first: the first matching rule wins.
        policy.rules.retain(|rule| rule.matches.as_ref().is_none_or(|m| m.is_empty()));
        policy.rules.insert(0, header_rule);
        set_default_route(policy, vec![Share::new(&other, 100)]);
        Ok(())
    }

    /// The rule's settings as the form asks: a filled field sets its value, an empty one
    /// keeps what the rule has, and a ticked `remove_*` box removes the setting (the form
    /// is filled in from the rule, so an empty field is not taken for "remove").
    fn set_resilience(&self, policy: &mut RoutingPolicy) -> Result<(), Vec<FieldProblem>> {
        let index: usize = self.rule.trim().parse().map_err(|_| vec![FieldProblem::new("rule", "choose a rule")])?;
        let mut problems = Vec::new();
        let attempts = number("retry_attempts", &self.settings.retry_attempts, &mut problems);
        let delay_percent = number("delay_percent", &self.settings.delay_percent, &mut problems);
        let abort_status = number("abort_status", &self.settings.abort_status, &mut problems);
        let abort_percent = number("abort_percent", &self.settings.abort_percent, &mut problems);
        let mirror_percent = number("mirror_percent", &self.settings.mirror_percent, &mut problems);
        let Some(rule) = policy.rules.get_mut(index) else {
            problems.push(FieldProblem::new("rule", "no such rule; define a route first"));
            return Err(problems);
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        let removes = |setting: &str| self.removes.iter().any(|removed| removed == setting);
        if removes("timeout") {
            rule.timeout = None;
        } else if let Some(timeout) = non_empty(&self.settings.timeout) {
            rule.timeout = Some(timeout);
        }
        if removes("retries") {
            rule.retries = None;
        } else if attempts.is_some() || non_empty(&self.settings.per_try_timeout).is_some() {
            let retries = rule.retries.get_or_insert_with(Retries::default);
            retries.attempts = attempts.map(|attempts| attempts as i32).or(retries.attempts);
            retries.per_try_timeout = non_empty(&self.settings.per_try_timeout).or(retries.per_try_timeout.take());
        }
        let mut fault = rule.fault.take().unwrap_or_default();
        if removes("delay") {
            fault.delay = None;
        } else if non_empty(&self.settings.delay).is_some() || delay_percent.is_some() {
            let delay = fault.delay.get_or_insert_with(Delay::default);
            delay.fixed_delay = non_empty(&self.settings.delay).or(delay.fixed_delay.take());
            delay.percentage = delay_percent.or(delay.percentage);
            if delay.fixed_delay.is_none() {
                problems.push(FieldProblem::new("delay", "say how long, e.g. 7s"));
            }
        }
        if removes("abort") {
            fault.abort = None;
        } else if abort_status.is_some() || abort_percent.is_some() {
            let abort = fault.abort.get_or_insert_with(Abort::default);
            abort.http_status = abort_status.map(|status| status as i32).or(abort.http_status);
            abort.percentage = abort_percent.or(abort.percentage);
            if abort.http_status.is_none() && abort.other.is_empty() {
                problems.push(FieldProblem::new("abort_status", "say which status, e.g. 503"));
            }
        }
        let keeps_fault = fault.delay.is_some() || fault.abort.is_some() || !fault.other.is_empty();
        rule.fault = keeps_fault.then_some(fault);
        if removes("mirror") {
            rule.mirror = None;
        } else if let Some(subset) = non_empty(&self.settings.mirror_subset) {
            let percentage = mirror_percent.or(rule.mirror.as_ref().and_then(|mirror| mirror.percentage));
            rule.mirror = Some(Mirror { subset, percentage });
        } else if let (Some(mirror), Some(percentage)) = (rule.mirror.as_mut(), mirror_percent) {
            mirror.percentage = Some(percentage);
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }
}

/// A number field: None when empty; a problem at the field when it is not a number.
fn number(field: &str, text: &str, problems: &mut Vec<FieldProblem>) -> Option<f64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    text.parse::<f64>().map_err(|_| problems.push(FieldProblem::new(field, "must be a number"))).ok()
}

/// `version-v1`, `version-v2`, ... selecting each deployed version, as the tutorial names them.
pub fn subsets_for(versions: &[String]) -> Vec<Subset> {
    versions.iter().map(|version| Subset::version(&format!("version-{version}"), version)).collect()
}

/// Replaces the route of the rule matching every request (adding one when there is none).
fn set_default_route(policy: &mut RoutingPolicy, route: Vec<Share>) {
    match policy.rules.iter_mut().find(|rule| rule.matches.as_ref().is_none_or(|m| m.is_empty())) {
        Some(rule) => rule.route = route,
        None => policy.rules.push(Rule { route, ..Rule::default() }),
    }
}

fn required(value: &str, field: &str) -> Result<String, Vec<FieldProblem>> {
    non_empty(value).ok_or_else(|| vec![FieldProblem::new(field, "is required")])
}

fn non_empty(value: &str) -> Option<String> {
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

fn from_pairs(pairs: &[(String, String)]) -> RouteForm {
    let field =
        |name: &str| pairs.iter().rev().find(|(key, _)| key == name).map(|(_, v)| v.clone()).unwrap_or_default();
    RouteForm {
        action: field("action"),
        subset: field("subset"),
        preset: field("preset"),
        header: field("header"),
        regex: field("regex"),
        matched_subset: field("matched_subset"),
        other_subset: field("other_subset"),
        rule: field("rule"),
        settings: RuleSettings {
            timeout: field("timeout"),
            retry_attempts: field("retry_attempts"),
            per_try_timeout: field("per_try_timeout"),
            delay: field("delay"),
            delay_percent: field("delay_percent"),
            abort_status: field("abort_status"),
            abort_percent: field("abort_percent"),
            mirror_subset: field("mirror_subset"),
            mirror_percent: field("mirror_percent"),
        },
        removes: Vec::new(),
        weights: BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live() -> RoutingPolicy {
        let mut policy = RoutingPolicy::new("recommendation");
        policy.subsets = subsets_for(&["v1".into(), "v2".into()]);
        policy.rules = vec![Rule::weighted(&[("version-v1", 100)])];
        policy
    }

    fn desired(body: &str) -> Result<RoutingPolicy, Vec<FieldProblem>> {
        RouteForm::parse(body.as_bytes()).desired(&live(), &["v1".into(), "v2".into(), "v3".into()])
    }

    fn desired_from(live: &RoutingPolicy, body: &str) -> Result<RoutingPolicy, Vec<FieldProblem>> {
        RouteForm::parse(body.as_bytes()).desired(live, &["v1".into(), "v2".into()])
    }

    fn shares(policy: &RoutingPolicy, rule: usize) -> Vec<(String, u32)> {
        policy.rules[rule].route.iter().map(|s| (s.subset.clone(), s.weight.percent().unwrap())).collect()
    }

    #[test]
    fn subsets_come_from_the_deployed_versions() {
        let policy = desired("action=subsets").unwrap();
        let names: Vec<&str> = policy.subsets.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["version-v1", "version-v2", "version-v3"]);
    }

    #[test]
    fn split_by_fields_and_by_preset() {
        let policy = desired("action=split&weight.version-v1=75&weight.version-v2=25").unwrap();
        assert_eq!(shares(&policy, 0), [("version-v1".into(), 75), ("version-v2".into(), 25)]);
        let preset = desired("action=split&preset=90%2F10&weight.version-v1=1").unwrap();
        assert_eq!(shares(&preset, 0), [("version-v1".into(), 90), ("version-v2".into(), 10)]);
        let all_v2 = desired("action=split&preset=0%2F100").unwrap();
        assert_eq!(shares(&all_v2, 0), [("version-v2".into(), 100)]);
        let bad = desired("action=split&weight.version-v1=abc").unwrap_err();
        assert_eq!(bad[0].field, "weight.version-v1");
    }

    #[test]
    fn a_header_rule_goes_first_and_everyone_else_follows() {
        let policy = desired("action=header&header=baggage-user-agent&regex=.*Firefox.*&matched_subset=version-v2&other_subset=version-v1").unwrap();
        assert_eq!(policy.rules.len(), 2);
        assert_eq!(shares(&policy, 0), [("version-v2".into(), 100)]);
        assert_eq!(shares(&policy, 1), [("version-v1".into(), 100)]);
        assert_eq!(desired("action=header&header=&regex=x").unwrap_err()[0].field, "header");
    }

    #[test]
    fn resilience_settings_land_on_the_chosen_rule_empty_fields_keep_them_and_remove_boxes_remove_them() {
        let policy = desired("action=resilience&rule=0&timeout=1s&retry_attempts=3&per_try_timeout=2s&delay=7s&delay_percent=50&abort_status=503&abort_percent=10&mirror_subset=version-v2&mirror_percent=100").unwrap();
        let rule = &policy.rules[0];
        assert_eq!(rule.timeout.as_deref(), Some("1s"));
        assert_eq!(rule.retries.as_ref().unwrap().attempts, Some(3));
        assert_eq!(rule.fault.as_ref().unwrap().abort.as_ref().unwrap().http_status, Some(503));
        assert_eq!(rule.mirror.as_ref().unwrap().subset, "version-v2");
        let kept = desired_from(&policy, "action=resilience&rule=0&abort_status=500").unwrap();
        let kept_rule = &kept.rules[0];
        assert_eq!(kept_rule.timeout.as_deref(), Some("1s"), "an empty field keeps the setting");
        assert_eq!(kept_rule.retries, rule.retries);
        let abort = kept_rule.fault.as_ref().unwrap().abort.as_ref().unwrap();
        assert_eq!((abort.http_status, abort.percentage), (Some(500), Some(10.0)), "only the status changed");
        let removed =
            desired_from(&policy, "action=resilience&rule=0&remove=timeout&remove=abort&remove=mirror").unwrap();
        let removed_rule = &removed.rules[0];
        assert!(removed_rule.timeout.is_none() && removed_rule.mirror.is_none());
        assert!(
            removed_rule.fault.as_ref().unwrap().abort.is_none()
                && removed_rule.fault.as_ref().unwrap().delay.is_some()
        );
        assert_eq!(removed_rule.retries, rule.retries, "what is not removed stays");
        assert_eq!(desired("action=resilience&rule=0&abort_percent=10").unwrap_err()[0].field, "abort_status");
        assert_eq!(desired("action=resilience&rule=5").unwrap_err()[0].field, "rule");
        assert_eq!(desired("action=resilience&rule=0&retry_attempts=many").unwrap_err()[0].field, "retry_attempts");
    }

    #[test]
    fn unknown_actions_are_refused() {
        assert_eq!(desired("action=explode").unwrap_err()[0].field, "action");
    }
}
