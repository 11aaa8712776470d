//! Kubernetes Events for applied changes, so that `kubectl get events` and
//! `kubectl describe` show "signalbox: route.update by alice …" next to the object's other events.
use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use crate::cluster::Kind;

use super::Change;

/// Kubernetes' limits on an Event's fields (bytes).
const MAX_NOTE: usize = 1024;
const MAX_SHORT: usize = 128;

#[derive(Clone)]
pub struct ChangeEvents {
    client: Client,
    reporter: Reporter,
}

impl ChangeEvents {
    pub fn new(client: Client) -> Self {
        let reporter = Reporter { controller: "signalbox".into(), instance: std::env::var("POD_NAME").ok() };
        Self { client, reporter }
    }

    /// Publishes the Event in the background: it is a courtesy to kubectl users, never a
    /// reason to hold up or fail a change that the audit log has already recorded.
    pub fn applied(&self, change: &Change, audit_id: i64) {
        let (event, regarding) = (event(change, audit_id), regarding(change));
        // A recorder of its own per change: a shared one folds a repeated action on the same
        // object into the first Event's series, which would keep showing the first note.
        let recorder = Recorder::new(self.client.clone(), self.reporter.clone());
        tokio::spawn(async move {
            if let Err(error) = recorder.publish(&event, &regarding).await {
                tracing::warn!(%error, object = ?regarding.name, "could not publish the change's Event");
            }
        });
    }
}

fn event(change: &Change, audit_id: i64) -> Event {
    let note = format!("signalbox: {} by {}: {} (audit #{audit_id})", change.action, change.actor.name, change.summary);
    Event {
        type_: EventType::Normal,
        reason: truncate(&pascal_case(change.action.as_str()), MAX_SHORT),
        note: Some(truncate(&note, MAX_NOTE)),
        action: truncate(change.action.as_str(), MAX_SHORT),
        secondary: None,
    }
}

/// The change's subject; a namespace's own changes are filed in that namespace.
fn regarding(change: &Change) -> ObjectReference {
    let subject = &change.subject;
    let resource = subject.kind.api_resource();
    ObjectReference {
        api_version: Some(resource.api_version),
        kind: Some(subject.kind.as_str().to_owned()),
        name: Some(subject.name.clone()),
        namespace: Some(match subject.kind {
            Kind::Namespace => subject.name.clone(),
            _ => subject.namespace.clone().unwrap_or_else(|| change.namespace.clone()),
        }),
        ..ObjectReference::default()
    }
}

/// `route.update` → `RouteUpdate`, `canary.scale-down` → `CanaryScaleDown`.
fn pascal_case(action: &str) -> String {
    action
        .split(['.', '-'])
        .filter(|word| !word.is_empty())
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map(|first| first.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
        })
        .collect()
}

/// At most `limit` bytes, cut at a character boundary.
fn truncate(text: &str, limit: usize) -> String {
    if text.len() <= limit {
        return text.to_owned();
    }
    let mut end = limit - '…'.len_utf8();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_become_reasons() {
        assert_eq!(pascal_case("route.update"), "RouteUpdate");
        assert_eq!(pascal_case("canary.scale-down"), "CanaryScaleDown");
        assert_eq!(pascal_case("revert"), "Revert");
    }

    #[test]
    fn long_text_is_cut_within_the_limit_at_a_character() {
        let long = "ä".repeat(700);
        let cut = truncate(&long, MAX_NOTE);
        assert!(cut.len() <= MAX_NOTE && cut.ends_with('…'), "{}", cut.len());
        assert_eq!(truncate("short", MAX_NOTE), "short");
    }
}
