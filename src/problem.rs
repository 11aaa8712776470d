//! A problem with one field of a request, shown next to the field or returned as JSON.
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldProblem {
    /// Path of the field in the request, e.g. `replicas` or `rules[1].route.version-v2`.
    pub field: String,
    pub message: String,
}

impl FieldProblem {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// The problems as one sentence, for the audit log and plain-text errors.
pub fn describe(problems: &[FieldProblem]) -> String {
    problems.iter().map(|problem| format!("{}: {}", problem.field, problem.message)).collect::<Vec<_>>().join("; ")
}

/// Kubernetes object names (RFC 1123 labels): lowercase alphanumerics and '-', at most 63.
pub fn check_dns_label(field: &str, value: &str) -> Result<(), FieldProblem> {
    let valid = !value.is_empty()
        && value.len() <= 63
        && value.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    if valid {
        Ok(())
    } else {
        Err(FieldProblem::new(
            field,
            "must be a DNS label: at most 63 lowercase letters, digits or '-', starting and ending with a letter or digit",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        assert!(check_dns_label("name", "recommendation-v2").is_ok());
        for bad in ["", "-a", "a-", "Upper", "<script>", "a.b", &"a".repeat(64)] {
            assert!(check_dns_label("name", bad).is_err(), "{bad:?} should be refused");
        }
    }
}
