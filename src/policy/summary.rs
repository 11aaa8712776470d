//! Plain-words descriptions of a policy (for pages) and of a change (for the audit log).
use super::model::{Match, RoutingPolicy, Rule, StringMatch};

/// Headers whose value is a browser user agent in the Istio tutorial.
const USER_AGENT_HEADERS: [&str; 2] = ["user-agent", "baggage-user-agent"];

/// Describes `policy`, e.g. `Firefox users → v2; everyone else: v1 90% · v2 10%`.
pub fn summary(policy: &RoutingPolicy) -> String {
    if policy.rules.is_empty() {
        return "no routing rules: Kubernetes spreads requests over all pods".to_string();
    }
    let mut parts = Vec::new();
    for (index, rule) in policy.rules.iter().enumerate() {
        let targets = format!("{}{}", describe_targets(policy, rule), describe_extras(policy, rule));
        match condition(rule) {
            Some(condition) => parts.push(format!("{condition} → {targets}")),
            None if index == 0 => parts.push(format!("everyone: {targets}")),
            None => parts.push(format!("everyone else: {targets}")),
        }
    }
    parts.join("; ")
}

/// Who a rule applies to, in words (`Firefox users`), or `None` when it matches every request.
pub fn condition(rule: &Rule) -> Option<String> {
    let entries = rule.matches.as_deref().filter(|m| !m.is_empty())?;
    let words: Vec<String> = entries.iter().map(describe_entry).collect();
    Some(words.join(" or "))
}

/// Who a rule at `index` applies to, in words, catch-all rules included: `everyone` for the
/// first rule, `everyone else` after others.
pub fn audience(index: usize, rule: &Rule) -> String {
    condition(rule).unwrap_or_else(|| if index == 0 { "everyone".into() } else { "everyone else".into() })
}

fn describe_targets(policy: &RoutingPolicy, rule: &Rule) -> String {
    match rule.route.as_slice() {
        [only] => policy.display_name(&only.subset),
        shares => {
            let parts: Vec<String> =
                shares.iter().map(|s| format!("{} {}%", policy.display_name(&s.subset), s.weight)).collect();
            parts.join(" · ")
        }
    }
}

fn describe_extras(policy: &RoutingPolicy, rule: &Rule) -> String {
    let extras: Vec<String> = settings(policy, rule).into_iter().map(|(_, words)| words).collect();
    if extras.is_empty() { String::new() } else { format!(" ({})", extras.join(", ")) }
}

/// A setting of a rule beside its weights, which the pictures mark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    Timeout,
    Retries,
    Delay,
    Abort,
    Mirror,
}

impl Setting {
    /// The mark's class (`mark-timeout`, ...), styled in app.css.
    pub fn class(self) -> &'static str {
        match self {
            Setting::Timeout => "mark-timeout",
            Setting::Retries => "mark-retries",
            Setting::Delay => "mark-delay",
            Setting::Abort => "mark-abort",
            Setting::Mirror => "mark-mirror",
        }
    }
}

/// The rule's settings besides its weights, each in words: `timeout 1s`, `3 retries`,
/// `10% delayed 5s`, `10% fail with 503`, `10% mirrored to v3`.
pub fn settings(policy: &RoutingPolicy, rule: &Rule) -> Vec<(Setting, String)> {
    let mut settings = Vec::new();
    if let Some(timeout) = &rule.timeout {
        settings.push((Setting::Timeout, format!("timeout {timeout}")));
    }
    if let Some(attempts) = rule.retries.as_ref().and_then(|r| r.attempts) {
        let words = if attempts == 0 { "no retries".to_string() } else { format!("{attempts} retries") };
        settings.push((Setting::Retries, words));
    }
    if let Some(delay) = rule.fault.as_ref().and_then(|f| f.delay.as_ref()) {
        let how_long = delay.fixed_delay.as_deref().unwrap_or("?");
        settings.push((Setting::Delay, format!("{} delayed {how_long}", percent(delay.percentage))));
    }
    if let Some(abort) = rule.fault.as_ref().and_then(|f| f.abort.as_ref()) {
        let status = abort.http_status.map_or("an error".to_string(), |s| s.to_string());
        settings.push((Setting::Abort, format!("{} fail with {status}", percent(abort.percentage))));
    }
    if let Some(mirror) = &rule.mirror {
        let words = format!("{} mirrored to {}", percent(mirror.percentage), policy.display_name(&mirror.subset));
        settings.push((Setting::Mirror, words));
    }
    settings
}

fn percent(value: Option<f64>) -> String {
    value.map_or("100%".to_string(), |v| format!("{v}%"))
}

fn describe_entry(entry: &Match) -> String {
    let mut browser = None;
    let mut conditions = Vec::new();
    for (name, m) in entry.headers.iter().flat_map(|h| h.iter()) {
        match browser_name(name, m) {
            Some(b) if browser.is_none() => browser = Some(b),
            _ => conditions.push(format!("header {name} {}", describe_match(m))),
        }
    }
    if let Some(uri) = &entry.uri {
        conditions.push(format!("path {}", describe_match(uri)));
    }
    if let Some(method) = &entry.method {
        conditions.push(format!("method {}", describe_match(method)));
    }
    for (name, m) in entry.query_params.iter().flat_map(|q| q.iter()) {
        conditions.push(format!("query {name} {}", describe_match(m)));
    }
    conditions.extend(entry.other.keys().map(|key| format!("{key} (as configured)")));
    match (browser, conditions.is_empty()) {
        (Some(browser), true) => format!("{browser} users"),
        (Some(browser), false) => format!("{browser} users with {}", conditions.join(" and ")),
        (None, _) => format!("requests with {}", conditions.join(" and ")),
    }
}

/// `Firefox` for a user-agent header matched by `.*Firefox.*`.
fn browser_name(header: &str, m: &StringMatch) -> Option<String> {
    let StringMatch::Regex(pattern) = m else {
        return None;
    };
    if !USER_AGENT_HEADERS.contains(&header.to_ascii_lowercase().as_str()) {
        return None;
    }
    let word = pattern.strip_prefix(".*")?.strip_suffix(".*")?;
    (!word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric())).then(|| word.to_string())
}

fn describe_match(m: &StringMatch) -> String {
    match m {
        StringMatch::Exact(v) => format!("= {v}"),
        StringMatch::Prefix(v) => format!("starting with {v}"),
        StringMatch::Regex(v) => format!("matching /{v}/"),
    }
}

/// One line describing what changed between two policies of a host, for the audit log,
/// e.g. `recommendation: v1 90%→75%, v2 10%→25%`.
pub fn change_summary(before: &RoutingPolicy, after: &RoutingPolicy) -> String {
    let mut changes = Vec::new();
    for subset in &after.subsets {
        match before.subset(&subset.name) {
            None => changes.push(format!("subset {} added", subset.name)),
            Some(old) if old.labels != subset.labels => changes.push(format!("subset {} relabelled", subset.name)),
            Some(_) => {}
        }
    }
    let removed = before.subsets.iter().filter(|s| after.subset(&s.name).is_none());
    changes.extend(removed.map(|s| format!("subset {} removed", s.name)));
    let several = before.rules.len().max(after.rules.len()) > 1;
    for index in 0..before.rules.len().max(after.rules.len()) {
        let prefix = if several { format!("rule {}: ", index + 1) } else { String::new() };
        match (before.rules.get(index), after.rules.get(index)) {
            (Some(old), Some(new)) => {
                changes.extend(rule_changes(after, old, new).into_iter().map(|c| format!("{prefix}{c}")))
            }
            (None, Some(rule)) => changes.push(format!("add: {}", rule_in_words(after, index, rule))),
            (Some(rule), None) => changes.push(format!("remove: {}", rule_in_words(before, index, rule))),
            (None, None) => {}
        }
    }
    if changes.is_empty() {
        format!("{}: no change", after.host)
    } else {
        format!("{}: {}", after.host, changes.join(", "))
    }
}

/// `Firefox users → v2`, `everyone else: v1 90% · v2 10% (timeout 1s)`.
fn rule_in_words(policy: &RoutingPolicy, index: usize, rule: &Rule) -> String {
    let targets = format!("{}{}", describe_targets(policy, rule), describe_extras(policy, rule));
    match condition(rule) {
        Some(condition) => format!("{condition} → {targets}"),
        None => format!("{} → {targets}", audience(index, rule)),
    }
}

fn rule_changes(policy: &RoutingPolicy, old: &Rule, new: &Rule) -> Vec<String> {
    let mut changes = Vec::new();
    let weight_of = |rule: &Rule, subset: &str| {
        rule.route.iter().find(|s| s.subset == subset).map_or("0".to_string(), |s| s.weight.to_string())
    };
    let subsets = new.route.iter().map(|s| &s.subset).chain(old.route.iter().map(|s| &s.subset));
    let mut seen = Vec::new();
    for subset in subsets {
        if seen.contains(&subset) {
            continue;
        }
        seen.push(subset);
        let (was, is) = (weight_of(old, subset), weight_of(new, subset));
        if was != is {
            changes.push(format!("send {is}% to {} (was {was}%)", policy.display_name(subset)));
        }
    }
    if old.matches != new.matches {
        let words = |rule: &Rule| condition(rule).unwrap_or_else(|| "everyone".to_owned());
        changes.push(format!("applies to {} (was {})", words(new), words(old)));
    }
    for (name, describe) in SETTINGS {
        if let Some(change) = setting_change(name, describe(policy, old), describe(policy, new)) {
            changes.push(change);
        }
    }
    if old.other != new.other {
        changes.push("other settings changed".to_owned());
    }
    changes
}

/// A rule's settings in words (None: not set), for saying how each changed.
type Describe = fn(&RoutingPolicy, &Rule) -> Option<String>;

const SETTINGS: [(&str, Describe); 5] =
    [
        ("timeout", |_, rule| rule.timeout.clone()),
        ("retries", |_, rule| rule.retries.as_ref().map(describe_retries)),
        ("delay", |_, rule| {
            rule.fault.as_ref()?.delay.as_ref().map(|delay| {
                format!("{} for {}", delay.fixed_delay.as_deref().unwrap_or("?"), percent(delay.percentage))
            })
        }),
        ("abort", |_, rule| {
            rule.fault.as_ref()?.abort.as_ref().map(|abort| {
                let status = abort.http_status.map_or("an error".to_owned(), |status| status.to_string());
                format!("{status} for {}", percent(abort.percentage))
            })
        }),
        ("mirror", |policy, rule| {
            rule.mirror.as_ref().map(|m| format!("to {} ({})", policy.display_name(&m.subset), percent(m.percentage)))
        }),
    ];

/// What writing `after` over `before` removes, in words: the live rules no rule of `after`
/// matches the same requests as (a rule is known by its match), and the settings the rules
/// it keeps lose. A write replaces the whole routing, so a client that sends only what it
/// means to change drops the rest; this says so before anything is lost.
pub fn removals(before: &RoutingPolicy, after: &RoutingPolicy) -> Vec<String> {
    let mut removed = Vec::new();
    for (index, old) in before.rules.iter().enumerate() {
        let single = RoutingPolicy { rules: vec![old.clone()], ..before.clone() };
        match after.rules.iter().find(|new| new.matches == old.matches) {
            None => removed.push(format!("rule {} ({})", index + 1, summary(&single))),
            Some(new) => {
                for (name, describe) in SETTINGS {
                    if let (Some(was), None) = (describe(before, old), describe(after, new)) {
                        removed.push(format!("the {name} {was} of rule {}", index + 1));
                    }
                }
            }
        }
    }
    removed
}

/// `timeout 1s → 3s`, `timeout 1s → removed`, `add abort 503 for 10%`; None when unchanged.
fn setting_change(name: &str, was: Option<String>, is: Option<String>) -> Option<String> {
    match (was, is) {
        (Some(was), Some(is)) if was == is => None,
        (Some(was), Some(is)) => Some(format!("{name} {was} → {is}")),
        (Some(was), None) => Some(format!("{name} {was} → removed")),
        (None, Some(is)) => Some(format!("add {name} {is}")),
        (None, None) => None,
    }
}

fn describe_retries(retries: &super::model::Retries) -> String {
    let attempts = match retries.attempts {
        Some(0) => "none".to_owned(),
        Some(attempts) => format!("{attempts} attempts"),
        None => "default attempts".to_owned(),
    };
    let per_try = retries.per_try_timeout.as_ref().map(|t| format!(", {t} per try")).unwrap_or_default();
    let on = retries.retry_on.as_ref().map(|on| format!(", on {on}")).unwrap_or_default();
    format!("{attempts}{per_try}{on}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(value: serde_json::Value) -> RoutingPolicy {
        serde_json::from_value(value).unwrap()
    }

    fn tutorial(v1: u32, v2: u32) -> RoutingPolicy {
        policy(json!({"host":"recommendation",
            "subsets":{"version-v1":{"version":"v1"},"version-v2":{"version":"v2"}},
            "rules":[{"route":{"version-v1":v1,"version-v2":v2}}]}))
    }

    #[test]
    fn firefox_and_split() {
        let p = policy(json!({"host":"recommendation",
            "subsets":{"version-v1":{"version":"v1"},"version-v2":{"version":"v2"}},
            "rules":[{"match":[{"headers":{"baggage-user-agent":{"regex":".*Firefox.*"}}}],"route":{"version-v2":100}},
                     {"route":{"version-v1":90,"version-v2":10}}]}));
        assert_eq!(summary(&p), "Firefox users → v2; everyone else: v1 90% · v2 10%");
    }

    #[test]
    fn generic_header_and_extras() {
        let p = policy(json!({"host":"r","subsets":{"canary":{"track":"canary"}},
            "rules":[{"match":[{"headers":{"x-user":{"exact":"bob"}},"uri":{"prefix":"/api"}}],"route":{"canary":100},
                      "timeout":"1s","retries":{"attempts":3},"mirror":{"subset":"canary","percentage":50}}]}));
        assert_eq!(
            summary(&p),
            "requests with header x-user = bob and path starting with /api → canary (timeout 1s, 3 retries, 50% mirrored to canary)"
        );
    }

    #[test]
    fn single_catch_all_and_empty() {
        assert_eq!(summary(&tutorial(100, 0)), "everyone: v1 100% · v2 0%");
        assert_eq!(summary(&RoutingPolicy::new("r")), "no routing rules: Kubernetes spreads requests over all pods");
    }

    #[test]
    fn faults_are_described() {
        let p = policy(json!({"host":"r","rules":[{"route":{"*":100},
            "fault":{"delay":{"fixedDelay":"7s","percentage":50},"abort":{"httpStatus":503}}}]}));
        assert_eq!(summary(&p), "everyone: all pods (50% delayed 7s, 100% fail with 503)");
    }

    #[test]
    fn weight_change_for_audit() {
        assert_eq!(
            change_summary(&tutorial(90, 10), &tutorial(75, 25)),
            "recommendation: send 75% to v1 (was 90%), send 25% to v2 (was 10%)"
        );
        assert_eq!(change_summary(&tutorial(90, 10), &tutorial(90, 10)), "recommendation: no change");
    }

    #[test]
    fn structural_changes_for_audit() {
        let before = tutorial(90, 10);
        let mut after = before.clone();
        after.rules[0].timeout = Some("2s".into());
        after.rules.push(crate::policy::Rule::weighted(&[("version-v1", 100)]));
        after.subsets.remove(1);
        assert_eq!(
            change_summary(&before, &after),
            "recommendation: subset version-v2 removed, rule 1: add timeout 2s, add: everyone else → v1"
        );
    }

    /// Each setting says what it was and what it becomes: a form that removes one says so.
    #[test]
    fn settings_changes_say_from_what_to_what() {
        let before = policy(
            json!({"host": "recommendation", "subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}},
            "rules": [{"route": {"version-v1": 100}, "timeout": "1s", "retries": {"attempts": 3, "perTryTimeout": "2s"},
                       "mirror": {"subset": "version-v2"}}]}),
        );
        let mut after = before.clone();
        after.rules[0].timeout = None;
        after.rules[0].retries.as_mut().unwrap().attempts = Some(5);
        after.rules[0].fault = Some(crate::policy::Fault {
            abort: Some(crate::policy::Abort { http_status: Some(503), percentage: Some(10.0), ..Default::default() }),
            ..Default::default()
        });
        assert_eq!(
            change_summary(&before, &after),
            "recommendation: timeout 1s → removed, retries 3 attempts, 2s per try → 5 attempts, 2s per try, \
             add abort 503 for 10%"
        );
    }

    #[test]
    fn a_write_that_leaves_out_a_rule_or_a_setting_names_what_it_removes() {
        let live = policy(json!({"host": "recommendation",
            "subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}},
            "rules": [{"match": [{"headers": {"baggage-user-agent": {"regex": ".*Firefox.*"}}}], "route": {"version-v2": 100}},
                      {"route": {"version-v1": 90, "version-v2": 10}, "timeout": "1s"}]}));
        let split = tutorial(75, 25);
        let removed = removals(&live, &split);
        assert_eq!(removed, ["rule 1 (Firefox users → v2)", "the timeout 1s of rule 2"]);
        assert!(removals(&live, &live).is_empty());
        assert!(removals(&split, &live).is_empty(), "adding removes nothing");
    }
}
