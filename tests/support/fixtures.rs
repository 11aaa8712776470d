//! Where the shared fixtures are: `SIGNALBOX_FIXTURES` when set (scripts/test.sh sets it for
//! a clone made away from `shared/`), else `../shared/fixtures` beside the checkout.
// Each test binary that includes this uses part of it.
#![allow(dead_code)]
use std::path::PathBuf;

pub fn fixtures_dir() -> PathBuf {
    std::env::var_os("SIGNALBOX_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures"))
}

/// Reads every YAML document of a fixture file (relative to the fixtures folder).
pub fn fixture_documents(relative: &str) -> Vec<serde_json::Value> {
    let path = fixtures_dir().join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|document| serde::Deserialize::deserialize(document).expect("valid YAML"))
        .filter(|document: &serde_json::Value| !document.is_null())
        .collect()
}
