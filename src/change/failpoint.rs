//! Failpoints for crash tests: `SIGNALBOX_FAILPOINT=after-audit-write` or `after-apply`
//! parks every change at that step of the path forever, so a test can `kill -9` the process
//! exactly there and check what the next start makes of it; `fail-after-first-write` makes
//! every write after a change's first fail as if the API server had gone away, so a test can
//! see a half-applied change rolled back. Read once, at startup; honoured
//! only in debug builds (what `cargo test` runs) — a release build ignores it with a warning,
//! so a stray variable cannot stall production changes.
use std::str::FromStr;

/// The environment variable naming the failpoint.
pub const FAILPOINT_ENV: &str = "SIGNALBOX_FAILPOINT";

/// A step of the change path a change can be parked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failpoint {
    /// The pending audit entry is durable; nothing was applied.
    AfterAuditWrite,
    /// The change was applied; its outcome is not recorded.
    AfterApply,
    /// The change's first write succeeded; every later one fails.
    FailAfterFirstWrite,
}

impl FromStr for Failpoint {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "after-audit-write" => Ok(Failpoint::AfterAuditWrite),
            "after-apply" => Ok(Failpoint::AfterApply),
            "fail-after-first-write" => Ok(Failpoint::FailAfterFirstWrite),
            other => Err(format!(
                "unknown failpoint {other:?}; known: after-audit-write, after-apply, fail-after-first-write"
            )),
        }
    }
}

impl Failpoint {
    /// The failpoint set in the environment, if any (and if this build honours it).
    pub fn from_env() -> Option<Self> {
        let value = std::env::var(FAILPOINT_ENV).ok().filter(|v| !v.is_empty())?;
        if !cfg!(debug_assertions) {
            tracing::warn!(value, "{FAILPOINT_ENV} is set but ignored: failpoints exist only in debug builds");
            return None;
        }
        match value.parse() {
            Ok(failpoint) => {
                tracing::warn!(?failpoint, "failpoint armed: every change is stopped there");
                Some(failpoint)
            }
            Err(problem) => {
                tracing::error!("{FAILPOINT_ENV}: {problem}");
                None
            }
        }
    }

    /// Parks the change for good when `armed` is this failpoint.
    pub async fn reached(armed: Option<Failpoint>, here: Failpoint, audit_id: i64) {
        if armed == Some(here) {
            tracing::warn!(failpoint = ?here, audit_id, "failpoint reached: this change stops here");
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failpoints_are_named_as_documented() {
        assert_eq!("after-audit-write".parse(), Ok(Failpoint::AfterAuditWrite));
        assert_eq!("after-apply".parse(), Ok(Failpoint::AfterApply));
        assert!("after-everything".parse::<Failpoint>().is_err());
    }
}
