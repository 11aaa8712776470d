//! Where a message from Istio's validating webhook belongs in a policy.
//!
//! istiod names no field paths: it says `"x" is not a valid retryOn policy` or `HTTP route
//! cannot contain both route and redirect`. Each [`FieldHint`] pairs words such a message
//! uses with the policy field they name, most specific first, so the page can show Istio's
//! verdict next to the field it concerns; a message that names none stays at the top.
use super::model::{RoutingPolicy, Rule};

/// Words of an Istio message, and the policy field they point at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldHint {
    pub words: Vec<String>,
    pub field: String,
}

impl FieldHint {
    fn new(words: &[&str], field: String) -> Self {
        Self { words: words.iter().map(|w| w.to_string()).collect(), field }
    }
}

/// The hints for `policy`, most specific first: names the user chose (headers, subsets),
/// then features a rule uses, first rule first.
pub fn field_hints(policy: &RoutingPolicy) -> Vec<FieldHint> {
    let mut hints = Vec::new();
    for (index, rule) in policy.rules.iter().enumerate() {
        for (match_index, entry) in rule.matches.iter().flatten().enumerate() {
            let base = format!("rules[{index}].match[{match_index}]");
            for name in entry.headers.iter().flat_map(|headers| headers.iter().map(|(name, _)| name)) {
                let field = format!("{base}.headers.{name}");
                hints.push(FieldHint::new(&[&format!("header name {name} ")], field));
            }
            // istiod prefixes string-match problems with where they are: `"headers": regex ...`.
            if let Some(name) = entry.headers.iter().flat_map(|headers| headers.iter().map(|(name, _)| name)).next() {
                hints.push(FieldHint::new(&["\"headers\""], format!("{base}.headers.{name}")));
            }
            if entry.uri.is_some() {
                hints.push(FieldHint::new(&["\"uri\""], format!("{base}.uri")));
            }
        }
    }
    for subset in &policy.subsets {
        hints.push(FieldHint::new(&[&format!("subset {} ", subset.name)], format!("subsets.{}", subset.name)));
    }
    for (index, rule) in policy.rules.iter().enumerate() {
        hints.extend(rule_hints(rule, &format!("rules[{index}]")));
    }
    hints
}

fn rule_hints(rule: &Rule, base: &str) -> Vec<FieldHint> {
    let mut hints = Vec::new();
    if let Some(retries) = &rule.retries {
        if retries.retry_on.is_some() {
            hints.push(FieldHint::new(&["retryOn"], format!("{base}.retries.retryOn")));
        }
        if retries.per_try_timeout.is_some() {
            hints.push(FieldHint::new(&["per_try_timeout", "perTryTimeout"], format!("{base}.retries.perTryTimeout")));
        }
        hints.push(FieldHint::new(&["retry", "retries", "attempts"], format!("{base}.retries.attempts")));
    }
    if let Some(fault) = &rule.fault {
        if fault.delay.is_some() {
            hints.push(FieldHint::new(&["delay"], format!("{base}.fault.delay.fixedDelay")));
        }
        if fault.abort.is_some() {
            hints.push(FieldHint::new(
                &["abort", "http status", "httpStatus"],
                format!("{base}.fault.abort.httpStatus"),
            ));
        }
        hints.push(FieldHint::new(&["fault", "percent"], format!("{base}.fault")));
    }
    if rule.mirror.is_some() {
        hints.push(FieldHint::new(&["mirror"], format!("{base}.mirror.subset")));
    }
    for key in rule.other.keys() {
        hints.push(FieldHint::new(&[key.as_str()], format!("{base}.{key}")));
    }
    if rule.timeout.is_some() {
        hints.push(FieldHint::new(&["timeout", "duration"], format!("{base}.timeout")));
    }
    hints.push(FieldHint::new(&["weight", "destination"], format!("{base}.route")));
    hints
}

/// The field `message` is about: the first hint one of whose words it contains
/// (case-insensitive); an empty path when it names none.
pub fn locate(message: &str, hints: &[FieldHint]) -> String {
    let message = format!("{} ", message.to_lowercase());
    hints
        .iter()
        .find(|hint| hint.words.iter().any(|word| message.contains(&word.to_lowercase())))
        .map(|hint| hint.field.clone())
        .unwrap_or_default()
}

/// istiod's messages in an API server refusal, when its validating webhook refused: the text
/// after `denied the request:`, split when istiod reports several errors.
pub fn webhook_messages(refusal: &str) -> Option<Vec<String>> {
    const DENIED: &str = "denied the request:";
    let (webhook, text) = refusal.split_once(DENIED)?;
    if !webhook.contains("validation.istio.io") {
        return None;
    }
    let text = text.trim();
    let text = text.strip_prefix("configuration is invalid:").unwrap_or(text).trim();
    let listed: Vec<String> =
        text.lines().filter_map(|line| line.trim().strip_prefix("* ")).map(|m| m.trim().to_owned()).collect();
    Some(if listed.is_empty() { vec![text.to_owned()] } else { listed })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(rules: serde_json::Value) -> RoutingPolicy {
        serde_json::from_value(json!({"host": "recommendation",
            "subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}}, "rules": rules}))
        .unwrap()
    }

    #[test]
    fn a_single_webhook_refusal_is_its_message() {
        let refusal = "admission webhook \"validation.istio.io\" denied the request: configuration is invalid: \
                       \"bogus\" is not a valid retryOn policy";
        assert_eq!(webhook_messages(refusal).unwrap(), vec!["\"bogus\" is not a valid retryOn policy"]);
    }

    #[test]
    fn several_errors_are_split() {
        let refusal = "admission webhook \"validation.istio.io\" denied the request: configuration is invalid: \
                       2 errors occurred:\n\t* HTTP route cannot contain both route and redirect\n\t* duration must be greater than 1ms\n\n";
        assert_eq!(
            webhook_messages(refusal).unwrap(),
            vec!["HTTP route cannot contain both route and redirect", "duration must be greater than 1ms"]
        );
    }

    #[test]
    fn other_refusals_are_not_istios() {
        assert_eq!(webhook_messages("VirtualService.networking.istio.io \"x\" is invalid: spec.http"), None);
        assert_eq!(webhook_messages("admission webhook \"other.example.com\" denied the request: no"), None);
    }

    #[test]
    fn messages_land_on_the_field_they_name() {
        let policy = policy(json!([
            {"match": [{"headers": {"x-user": {"exact": "a"}}}], "route": {"version-v2": 100}},
            {"route": {"version-v1": 100}, "retries": {"attempts": 3, "retryOn": "5xx"},
             "redirect": {"uri": "/x"}, "timeout": "1s"}
        ]));
        let hints = field_hints(&policy);
        let located = |message: &str| locate(message, &hints);
        assert_eq!(located("\"bogus\" is not a valid retryOn policy"), "rules[1].retries.retryOn");
        assert_eq!(located("HTTP route cannot contain both route and redirect"), "rules[1].redirect");
        assert_eq!(located("header name x-user is not a valid header name"), "rules[0].match[0].headers.x-user");
        assert_eq!(located("\"headers\": regex is invalid: invalid repeat count"), "rules[0].match[0].headers.x-user");
        assert_eq!(located("duration must be greater than 1ms"), "rules[1].timeout");
        assert_eq!(located("something else entirely"), "");
    }
}
