//! The `status` istiod writes into Istio objects when it runs with `PILOT_ENABLE_ANALYSIS`:
//! its analysis messages (IST0101 a referenced host or subset not found, …) and the
//! generation they judged.
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::virtual_service::Unmodelled;

/// An Istio object's `status` (`istio.meta.v1alpha1.IstioStatus`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct IstioStatus {
    /// The object's generation the messages are about: an integer, or a string of one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub validation_messages: Vec<ValidationMessage>,
    #[serde(flatten)]
    pub other: Unmodelled,
}

/// One analysis message as istiod stores it: a code, a level and a link; no text.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ValidationMessage {
    #[serde(default, rename = "type")]
    pub message_type: MessageType,
    /// `ERROR`, `WARNING` or `INFO` (a number in some writers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documentation_url: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct MessageType {
    #[serde(default)]
    pub code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl IstioStatus {
    /// The generation the messages were written for, when it says.
    pub fn observed(&self) -> Option<i64> {
        match self.observed_generation.as_ref()? {
            Value::Number(number) => number.as_i64(),
            Value::String(text) => text.parse().ok(),
            _ => None,
        }
    }
}

impl ValidationMessage {
    /// `IST0101`, as written.
    pub fn code(&self) -> &str {
        &self.message_type.code
    }

    /// The message's name and what it means, from Istio's catalogue of the codes that
    /// concern routing (`pkg/config/analysis/msg/messages.yaml`); None for other codes.
    pub fn meaning(&self) -> Option<(&'static str, &'static str)> {
        CATALOGUE.iter().find(|(code, _, _)| *code == self.code()).map(|(_, name, meaning)| (*name, *meaning))
    }

    /// `Error`, `Warning`, `Info`, or `Unknown`.
    pub fn level(&self) -> &'static str {
        match self.level.as_ref() {
            Some(Value::String(level)) => match level.to_ascii_uppercase().as_str() {
                "ERROR" => "Error",
                "WARNING" => "Warning",
                "INFO" => "Info",
                _ => "Unknown",
            },
            Some(Value::Number(number)) => match number.as_i64() {
                Some(3) => "Error",
                Some(8) => "Warning",
                Some(12) => "Info",
                _ => "Unknown",
            },
            _ => "Unknown",
        }
    }

    /// Where Istio documents the code: the message's own link when it is Istio's, else the
    /// reference page of the code.
    pub fn documentation(&self) -> String {
        match &self.documentation_url {
            Some(url) if url.starts_with("https://istio.io/") => url.clone(),
            _ => {
                format!("https://istio.io/latest/docs/reference/config/analysis/{}/", self.code().to_ascii_lowercase())
            }
        }
    }
}

/// One analysis message on one object, for the routing page and API.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnalysisNote {
    pub kind: &'static str,
    pub object: String,
    pub code: String,
    /// Istio's name for the code (`ReferencedResourceNotFound`), when known here.
    pub name: Option<&'static str>,
    pub meaning: Option<&'static str>,
    pub level: &'static str,
    pub documentation_url: String,
    /// False when istiod judged an earlier generation of the object (it has not analysed
    /// the latest change yet).
    pub current: bool,
}

impl AnalysisNote {
    /// The messages istiod wrote on the object `kind` `metadata` names.
    pub fn of(kind: &'static str, metadata: &ObjectMeta, status: Option<&IstioStatus>) -> Vec<Self> {
        let Some(status) = status else { return Vec::new() };
        let current = status.observed().is_none() || status.observed() == metadata.generation;
        let object = metadata.name.clone().unwrap_or_default();
        let note = |message: &ValidationMessage| AnalysisNote {
            kind,
            object: object.clone(),
            code: message.code().to_owned(),
            name: message.meaning().map(|(name, _)| name),
            meaning: message.meaning().map(|(_, meaning)| meaning),
            level: message.level(),
            documentation_url: message.documentation(),
            current,
        };
        status.validation_messages.iter().map(note).collect()
    }
}

/// The analysis codes a VirtualService or DestinationRule can carry, named as Istio names
/// them.
const CATALOGUE: &[(&str, &str, &str)] = &[
    ("IST0101", "ReferencedResourceNotFound", "a host, subset or gateway it refers to does not exist"),
    ("IST0106", "SchemaValidationError", "the object does not pass Istio's schema"),
    ("IST0109", "ConflictingMeshGatewayVirtualServiceHosts", "another VirtualService routes the same host in the mesh"),
    (
        "IST0128",
        "NoServerCertificateVerificationDestinationLevel",
        "TLS without caCertificates: the server is not verified",
    ),
    ("IST0130", "VirtualServiceUnreachableRule", "a rule is never used: an earlier rule takes the same requests"),
    ("IST0131", "VirtualServiceIneffectiveMatch", "a match repeats one of an earlier rule"),
    ("IST0132", "VirtualServiceHostNotFoundInGateway", "a host is not among the Gateway's hosts"),
    ("IST0173", "DestinationRuleSubsetNotSelectPods", "a subset selects no pods"),
    ("IST0174", "UnknownDestinationRuleHost", "the host matches no service in the mesh"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn istiods_status_reads_with_its_codes_levels_and_links() {
        let status: IstioStatus = serde_json::from_value(json!({
            "observedGeneration": "3",
            "validationMessages": [
                {"type": {"code": "IST0101"}, "level": "ERROR",
                 "documentationUrl": "https://istio.io/v1.28/docs/reference/config/analysis/ist0101/?ref=status-controller"},
                {"type": {"code": "IST0999"}, "level": 8, "documentationUrl": "javascript:alert(1)"}
            ],
            "conditions": [{"type": "Reconciled"}]
        }))
        .unwrap();
        assert_eq!(status.observed(), Some(3));
        let [known, unknown] = &status.validation_messages[..] else { panic!("two messages") };
        assert_eq!((known.level(), known.meaning().map(|m| m.0)), ("Error", Some("ReferencedResourceNotFound")));
        assert!(known.documentation().starts_with("https://istio.io/v1.28/"));
        assert_eq!((unknown.level(), unknown.meaning()), ("Warning", None));
        assert_eq!(unknown.documentation(), "https://istio.io/latest/docs/reference/config/analysis/ist0999/");
        assert!(status.other.contains_key("conditions"), "what is not modelled is kept");
    }
}
