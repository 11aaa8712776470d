//! What the audit log keeps of an outside change's documents. Whoever can edit an object
//! decides its size (up to the API server's ~1.5 MiB, 256 KiB of it annotations), so an
//! outside change's `before` and `after` are kept whole only up to [`DOCUMENT_BYTES`]; a
//! larger one is replaced by a marker naming the object, its size and a digest of its
//! content. The digest lets a restart tell whether the object is still as last recorded
//! ([`same_content`]) without the log holding the object; a revert refuses a marker (it
//! cannot put back what was not kept).
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

/// The most bytes of JSON an outside change's `before` or `after` is stored with.
pub const DOCUMENT_BYTES: usize = 64 * 1024;
/// The field of a marker that stands for a document over [`DOCUMENT_BYTES`].
pub const NOT_STORED: &str = "signalbox.io/not-stored";

/// `document` as an outside change's entry keeps it: itself when its JSON fits in
/// [`DOCUMENT_BYTES`], else a marker with its kind, name, size and content digest.
pub fn bounded_document(document: Value) -> Value {
    let bytes = document.to_string().len();
    if bytes <= DOCUMENT_BYTES {
        return document;
    }
    let metadata = &document["metadata"];
    json!({
        "apiVersion": document["apiVersion"],
        "kind": document["kind"],
        "metadata": {"name": metadata["name"], "namespace": metadata["namespace"]},
        NOT_STORED: {
            "bytes": bytes,
            "limit": DOCUMENT_BYTES,
            "sha256": content_digest(&document),
            "reason": format!("document of {} KiB over the {} KiB limit, not stored", bytes.div_ceil(1024), DOCUMENT_BYTES / 1024),
        }
    })
}

/// Whether `document` (an object, or a `v1/List` of them) holds a marker in place of an
/// object that was not stored.
pub fn is_not_stored(document: &Value) -> bool {
    let marked = |object: &Value| object.get(NOT_STORED).is_some();
    match document["items"].as_array() {
        Some(items) if document["kind"] == "List" => items.iter().any(marked),
        _ => marked(document),
    }
}

/// Whether two states are the same object content, `apiVersion`/`kind` aside (list items
/// lack them; recorded documents carry them). A marker is the same as the object whose
/// content digest it holds.
pub fn same_content(a: &Value, b: &Value) -> bool {
    match (digest_of_marker(a), digest_of_marker(b)) {
        (Some(a), Some(b)) => a == b,
        (Some(digest), None) => digest == content_digest(b),
        (None, Some(digest)) => digest == content_digest(a),
        (None, None) => content(a) == content(b),
    }
}

fn digest_of_marker(document: &Value) -> Option<&str> {
    document.get(NOT_STORED)?.get("sha256")?.as_str()
}

/// SHA-256 (hex) of an object's content with its keys sorted: the same whatever order the
/// API server or the log gave the fields in.
pub fn content_digest(document: &Value) -> String {
    let canonical = sorted(content(document)).to_string();
    Sha256::digest(canonical.as_bytes()).iter().map(|byte| format!("{byte:02x}")).collect()
}

fn content(value: &Value) -> Value {
    let mut value = value.clone();
    if let Some(fields) = value.as_object_mut() {
        fields.remove("apiVersion");
        fields.remove("kind");
    }
    value
}

/// `value` with every object's keys in order (serde_json keeps insertion order here).
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(fields) => {
            let mut entries: Vec<(String, Value)> = fields.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(key, value)| (key, sorted(value))).collect::<Map<_, _>>())
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn virtual_service(annotation_bytes: usize) -> Value {
        json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
               "metadata": {"name": "big", "namespace": "t", "annotations": {"filler": "x".repeat(annotation_bytes)}},
               "spec": {"hosts": ["big"]}})
    }

    #[test]
    fn a_document_over_the_limit_is_replaced_by_a_marker_that_still_compares() {
        let small = virtual_service(100);
        assert_eq!(bounded_document(small.clone()), small, "small documents are kept whole");
        assert!(!is_not_stored(&small));

        let big = virtual_service(200 * 1024);
        let marker = bounded_document(big.clone());
        assert!(marker.to_string().len() < 1024, "{marker}");
        assert!(is_not_stored(&marker));
        assert_eq!(
            (marker["kind"].as_str(), marker["metadata"]["name"].as_str()),
            (Some("VirtualService"), Some("big"))
        );
        assert!(marker[NOT_STORED]["reason"].as_str().unwrap().contains("over the 64 KiB limit, not stored"));
        assert!(same_content(&marker, &big), "the marker stands for the object it replaced");
        let mut changed = big.clone();
        changed["spec"]["hosts"] = json!(["other"]);
        assert!(!same_content(&marker, &changed));
        let list = json!({"kind": "List", "items": [small, marker]});
        assert!(is_not_stored(&list));
    }

    #[test]
    fn the_digest_ignores_field_order_and_the_type_fields() {
        let a: Value =
            serde_json::from_str(r#"{"kind":"X","metadata":{"name":"a","labels":{"p":"1","q":"2"}}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"metadata":{"labels":{"q":"2","p":"1"},"name":"a"}}"#).unwrap();
        assert_eq!(content_digest(&a), content_digest(&b));
    }
}
