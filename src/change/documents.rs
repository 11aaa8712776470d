//! The before/after documents of a change, and their diff.
use serde_json::{Value, json};

use super::gitops::{GitOwner, owner_of};
use crate::cluster::without_server_fields;

/// The state of each object a change touches (None: absent), in operation order, and the
/// GitOps tool owning each (known only from the server fields the documents leave out: who
/// wrote the object).
#[derive(Debug, Clone, PartialEq)]
pub struct Documents(Vec<Option<Value>>, Vec<Option<GitOwner>>);

impl Documents {
    pub fn new(objects: Vec<Option<Value>>) -> Self {
        let owners = objects.iter().map(|object| object.as_ref().and_then(owner_of)).collect();
        Self(objects.into_iter().map(|object| object.map(without_server_fields)).collect(), owners)
    }

    pub fn objects(&self) -> &[Option<Value>] {
        &self.0
    }

    /// Per object, the GitOps tool that owns it.
    pub fn owners(&self) -> &[Option<GitOwner>] {
        &self.1
    }

    /// One object as itself, several as a `v1/List` (as kubectl prints them).
    pub fn to_document(&self) -> Value {
        match self.0.as_slice() {
            [single] => single.clone().unwrap_or(Value::Null),
            many => json!({
                "apiVersion": "v1",
                "kind": "List",
                "items": many.iter().flatten().cloned().collect::<Vec<_>>()
            }),
        }
    }

    /// The inverse of [`Documents::to_document`], given how many objects there were.
    pub fn from_document(document: Option<&Value>, count: usize) -> Self {
        let objects = match document {
            None | Some(Value::Null) => vec![None; count],
            Some(list) if count != 1 => {
                let items = list.get("items").and_then(Value::as_array).cloned().unwrap_or_default();
                items.into_iter().map(Some).collect()
            }
            Some(single) => vec![Some(single.clone())],
        };
        // A recorded document keeps no server fields: its owners are as far as labels say.
        let owners = objects.iter().map(|object| object.as_ref().and_then(owner_of)).collect();
        Self(objects, owners)
    }

    /// The objects as multi-document YAML.
    pub fn to_yaml(&self) -> String {
        self.0.iter().flatten().map(to_yaml).collect::<Vec<_>>().join("---\n")
    }
}

pub fn to_yaml(object: &Value) -> String {
    serde_yaml_ng::to_string(object).unwrap_or_else(|_| object.to_string())
}

/// A unified diff of the YAML of the live and the planned state.
pub fn diff(live: &Documents, planned: &Documents) -> String {
    diff_labeled(live, planned, ("live", "planned"))
}

/// A unified diff of the YAML of two states, with the given headers.
pub fn diff_labeled(before: &Documents, after: &Documents, (from, to): (&str, &str)) -> String {
    let (before, after) = (before.to_yaml(), after.to_yaml());
    similar::TextDiff::from_lines(&before, &after).unified_diff().context_radius(4).header(from, to).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_object_is_its_own_document_and_several_a_list() {
        let one = Documents::new(vec![Some(json!({"kind": "Service"}))]);
        assert_eq!(one.to_document(), json!({"kind": "Service"}));
        let two = Documents::new(vec![None, Some(json!({"kind": "Service"}))]);
        assert_eq!(two.to_document()["items"], json!([{"kind": "Service"}]));
    }

    #[test]
    fn diff_shows_the_changed_lines() {
        let before = Documents::new(vec![Some(json!({"spec": {"replicas": 1}}))]);
        let after = Documents::new(vec![Some(json!({"spec": {"replicas": 2}}))]);
        let text = diff(&before, &after);
        assert!(text.contains("-  replicas: 1"), "{text}");
        assert!(text.contains("+  replicas: 2"), "{text}");
    }
}
