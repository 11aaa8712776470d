//! Parsing Istio objects from YAML/JSON and rendering them back.
//!
//! `v1alpha3`, `v1beta1` and `v1` of `networking.istio.io` share one schema, so all three
//! parse into the same types; rendering always writes `v1`.
use super::{DestinationRule, Gateway, VirtualService};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The API group of Istio's networking resources.
pub const ISTIO_NETWORKING_GROUP: &str = "networking.istio.io";

/// API versions accepted when parsing; they share one schema.
pub const ACCEPTED_VERSIONS: [&str; 3] = ["v1", "v1beta1", "v1alpha3"];

/// Why a document could not be turned into an Istio object.
#[derive(Debug, thiserror::Error)]
pub enum IstioError {
    /// The text is not valid YAML (or JSON).
    #[error("invalid YAML: {0}")]
    Yaml(String),
    /// The document is some other kind of object.
    #[error("unsupported object: apiVersion {api_version:?}, kind {kind:?}")]
    UnsupportedKind {
        /// The document's apiVersion.
        api_version: String,
        /// The document's kind.
        kind: String,
    },
    /// The document has the right kind but a field has the wrong shape.
    #[error("invalid {kind}: {message}")]
    Invalid {
        /// The document's kind.
        kind: String,
        /// What is wrong, with its path.
        message: String,
    },
    /// Expected one document, found another number.
    #[error("expected exactly one YAML document, found {0}")]
    DocumentCount(usize),
    /// Serialization failed (not expected for these types).
    #[error("could not serialize: {0}")]
    Serialize(String),
}

/// Any of the Istio objects signalbox understands.
#[derive(Clone, Debug, PartialEq)]
pub enum IstioObject {
    /// A VirtualService.
    VirtualService(VirtualService),
    /// A DestinationRule.
    DestinationRule(DestinationRule),
    /// A Gateway.
    Gateway(Gateway),
}

impl IstioObject {
    /// The object's kind (`VirtualService`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            IstioObject::VirtualService(_) => "VirtualService",
            IstioObject::DestinationRule(_) => "DestinationRule",
            IstioObject::Gateway(_) => "Gateway",
        }
    }

    /// The object as a JSON value with apiVersion `networking.istio.io/v1`.
    pub fn to_value(&self) -> Result<Value, IstioError> {
        let value = match self {
            IstioObject::VirtualService(o) => serde_json::to_value(o),
            IstioObject::DestinationRule(o) => serde_json::to_value(o),
            IstioObject::Gateway(o) => serde_json::to_value(o),
        };
        value.map_err(|e| IstioError::Serialize(e.to_string()))
    }
}

/// Splits a (possibly multi-document) YAML text into JSON values, skipping empty documents.
pub fn yaml_documents(text: &str) -> Result<Vec<Value>, IstioError> {
    let mut documents = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let value = Value::deserialize(document).map_err(|e| IstioError::Yaml(e.to_string()))?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    Ok(documents)
}

/// Turns one JSON value into a typed Istio object, accepting any shared-schema apiVersion.
pub fn parse_value(value: Value) -> Result<IstioObject, IstioError> {
    let api_version = string_field(&value, "apiVersion");
    let kind = string_field(&value, "kind");
    if !is_istio_networking(&api_version) {
        return Err(IstioError::UnsupportedKind { api_version, kind });
    }
    let invalid = |e: serde_json::Error| IstioError::Invalid { kind: kind.clone(), message: e.to_string() };
    match kind.as_str() {
        "VirtualService" => serde_json::from_value(value).map(IstioObject::VirtualService).map_err(invalid),
        "DestinationRule" => serde_json::from_value(value).map(IstioObject::DestinationRule).map_err(invalid),
        "Gateway" => serde_json::from_value(value).map(IstioObject::Gateway).map_err(invalid),
        _ => Err(IstioError::UnsupportedKind { api_version, kind }),
    }
}

/// Parses a YAML text holding exactly one Istio object.
pub fn parse_yaml(text: &str) -> Result<IstioObject, IstioError> {
    let mut documents = yaml_documents(text)?;
    if documents.len() != 1 {
        return Err(IstioError::DocumentCount(documents.len()));
    }
    parse_value(documents.remove(0))
}

/// Renders any serializable object (typically an Istio object) as YAML.
pub fn to_yaml<T: Serialize>(object: &T) -> Result<String, IstioError> {
    serde_yaml_ng::to_string(object).map_err(|e| IstioError::Serialize(e.to_string()))
}

/// Whether `api_version` is `networking.istio.io/<one of the accepted versions>`.
pub fn is_istio_networking(api_version: &str) -> bool {
    api_version
        .split_once('/')
        .is_some_and(|(group, version)| group == ISTIO_NETWORKING_GROUP && ACCEPTED_VERSIONS.contains(&version))
}

fn string_field(value: &Value, key: &str) -> String {
    value.get(key).and_then(Value::as_str).unwrap_or_default().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIREFOX: &str = r#"
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: recommendation
spec:
  hosts:
  - recommendation
  http:
  - match:
    - headers:
        baggage-user-agent:
          regex: .*Firefox.*
    route:
    - destination:
        host: recommendation
        subset: version-v2
  - route:
    - destination:
        host: recommendation
        subset: version-v1
---
"#;

    #[test]
    fn parses_v1alpha3_virtual_service_and_renders_v1() {
        let IstioObject::VirtualService(vs) = parse_yaml(FIREFOX).unwrap() else { panic!("not a VS") };
        let http = vs.spec.http.as_ref().unwrap();
        assert_eq!(http.len(), 2);
        let regex = http[0].matches.as_ref().unwrap()[0].headers.as_ref().unwrap().get("baggage-user-agent");
        assert_eq!(regex.unwrap().regex.as_deref(), Some(".*Firefox.*"));
        let value = serde_json::to_value(&vs).unwrap();
        assert_eq!(value["apiVersion"], "networking.istio.io/v1");
        assert_eq!(value["spec"]["http"][1]["route"][0]["destination"]["subset"], "version-v1");
    }

    #[test]
    fn keeps_unmodelled_fields() {
        let text = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r}
spec:
  hosts: [r]
  exportTo: ["."]
  tcp: [{route: [{destination: {host: r}}]}]
  http:
  - corsPolicy: {allowOrigins: [{exact: "https://x"}]}
    route: [{destination: {host: r, port: {number: 8080}}, headers: {request: {set: {a: b}}}}]
"#;
        let original = yaml_documents(text).unwrap().remove(0);
        let object = parse_value(original.clone()).unwrap();
        assert_eq!(object.to_value().unwrap(), original);
    }

    #[test]
    fn other_kinds_are_reported_not_parsed() {
        let err = parse_yaml("apiVersion: v1\nkind: Service\nmetadata: {name: a}\n").unwrap_err();
        assert!(matches!(err, IstioError::UnsupportedKind { .. }));
        let err = parse_yaml("apiVersion: networking.istio.io/v1\nkind: ServiceEntry\n").unwrap_err();
        assert!(matches!(err, IstioError::UnsupportedKind { .. }));
    }

    #[test]
    fn wrong_shapes_are_errors_not_panics() {
        let err = parse_yaml(
            "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: a}\nspec: {http: 3}\n",
        );
        assert!(matches!(err, Err(IstioError::Invalid { .. })));
        assert!(matches!(parse_yaml(": : :\n- ["), Err(IstioError::Yaml(_))));
        assert!(matches!(parse_yaml(""), Err(IstioError::DocumentCount(0))));
    }

    #[test]
    fn percent_renders_whole_numbers_as_integers() {
        let percent = crate::istio::Percent::of(100.0);
        assert_eq!(serde_json::to_string(&percent).unwrap(), r#"{"value":100}"#);
        let percent = crate::istio::Percent::of(0.5);
        assert_eq!(serde_json::to_string(&percent).unwrap(), r#"{"value":0.5}"#);
    }

    #[test]
    fn to_yaml_round_trips() {
        let object = parse_yaml(FIREFOX).unwrap();
        let IstioObject::VirtualService(vs) = &object else { panic!("not a VS") };
        let again = parse_yaml(&to_yaml(vs).unwrap()).unwrap();
        assert_eq!(again, object);
    }
}
