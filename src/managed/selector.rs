//! Kubernetes label selector text (`kubectl get -l` syntax) into kube's `Selector`.
use std::collections::BTreeSet;

use kube::core::{Expression, Selector};

/// Parses `a=b,c!=d,e,!f,g in (h,i),j notin (k)` (`==` too), as `kubectl -l` does.
pub fn parse_selector(text: &str) -> Result<Selector, String> {
    let mut expressions = Vec::new();
    for term in split_terms(text)? {
        expressions.push(parse_term(term.trim())?);
    }
    if expressions.is_empty() {
        return Err("the selector is empty; give at least one requirement, e.g. istio-injection=enabled".into());
    }
    Ok(expressions.into_iter().collect())
}

/// Splits on the commas outside parentheses.
fn split_terms(text: &str) -> Result<Vec<&str>, String> {
    let (mut terms, mut depth, mut start) = (Vec::new(), 0usize, 0);
    for (at, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.checked_sub(1).ok_or_else(|| format!("an unmatched ')' in {text:?}"))?,
            ',' if depth == 0 => {
                terms.push(&text[start..at]);
                start = at + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!("an unclosed '(' in {text:?}"));
    }
    terms.push(&text[start..]);
    Ok(terms.into_iter().filter(|term| !term.trim().is_empty()).collect())
}

fn parse_term(term: &str) -> Result<Expression, String> {
    if let Some(key) = term.strip_prefix('!') {
        return Ok(Expression::DoesNotExist(key_of(key)?));
    }
    for (operator, build) in [("!=", not_equal as fn(String, String) -> Expression), ("==", equal), ("=", equal)] {
        if let Some((key, value)) = term.split_once(operator) {
            return Ok(build(key_of(key)?, value_of(value)?));
        }
    }
    for (operator, negated) in [(" notin ", true), (" in ", false)] {
        if let Some((key, values)) = term.split_once(operator) {
            let values = set_of(values)?;
            let key = key_of(key)?;
            return Ok(if negated { Expression::NotIn(key, values) } else { Expression::In(key, values) });
        }
    }
    Ok(Expression::Exists(key_of(term)?))
}

fn equal(key: String, value: String) -> Expression {
    Expression::Equal(key, value)
}

fn not_equal(key: String, value: String) -> Expression {
    Expression::NotEqual(key, value)
}

fn set_of(values: &str) -> Result<BTreeSet<String>, String> {
    let inner = values.trim().strip_prefix('(').and_then(|rest| rest.strip_suffix(')'));
    let inner = inner.ok_or_else(|| format!("expected a set like (a,b), got {values:?}"))?;
    inner.split(',').map(value_of).collect()
}

/// A label key: an optional DNS prefix and `/`, then a name of letters, digits, `-_.`.
fn key_of(key: &str) -> Result<String, String> {
    let key = key.trim();
    let name = key.rsplit('/').next().unwrap_or_default();
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-_./".contains(c);
    if name.is_empty() || name.len() > 63 || key.len() > 317 || !key.chars().all(allowed) {
        return Err(format!("{key:?} is not a label key"));
    }
    Ok(key.to_owned())
}

fn value_of(value: &str) -> Result<String, String> {
    let value = value.trim();
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    if value.len() > 63 || !value.chars().all(allowed) {
        return Err(format!("{value:?} is not a label value"));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kube::core::SelectorExt;

    use super::*;

    fn matches(selector: &str, labels: &[(&str, &str)]) -> bool {
        let labels: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        parse_selector(selector).unwrap().matches(&labels)
    }

    #[test]
    fn every_kubectl_form_selects_as_kubectl_does() {
        assert!(matches("istio-injection=enabled", &[("istio-injection", "enabled")]));
        assert!(!matches("istio-injection=enabled", &[("istio-injection", "disabled")]));
        assert!(matches("team==shop", &[("team", "shop")]));
        assert!(matches("env!=prod", &[]), "!= also selects a missing label");
        assert!(matches("istio.io/rev", &[("istio.io/rev", "1-28")]));
        assert!(matches("!legacy", &[]) && !matches("!legacy", &[("legacy", "")]));
        assert!(matches("env in (dev, test),team", &[("env", "test"), ("team", "a")]));
        assert!(!matches("env in (dev,test),team", &[("env", "test")]));
        assert!(matches("env notin (prod)", &[("env", "dev")]));
    }

    #[test]
    fn a_broken_selector_says_what_is_wrong() {
        assert!(parse_selector("").unwrap_err().contains("empty"));
        assert!(parse_selector("a in (b").unwrap_err().contains("unclosed"));
        assert!(parse_selector("a=b c").unwrap_err().contains("not a label value"));
        assert!(parse_selector("a in b").unwrap_err().contains("expected a set"));
        assert!(parse_selector("=b").unwrap_err().contains("not a label key"));
    }
}
