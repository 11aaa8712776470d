//! The integration tests, one binary: every module below shares `support` and the dev
//! cluster `make test` starts, and a full rebuild links this once instead of once per file.
//! Two tests keep binaries of their own because they measure the whole process or the
//! whole cluster: `tests/audit_export.rs` (this process's memory) and
//! `tests/watch_count.rs` (every open watch on the API server).
#[path = "../support/mod.rs"]
mod support;

mod adopt;
mod approval;
mod audit_anchor;
mod audit_chain;
mod audit_completeness;
mod audit_faults;
mod audit_retention;
mod browser;
mod canary;
mod canary_metrics;
mod cluster;
mod console;
mod crash;
mod deploy;
mod devcluster;
mod envoy_agreement;
mod every_route;
mod external;
mod external_abuse;
mod external_restart;
mod freeze;
mod gateway_api;
mod gitops;
mod hardening;
mod lease;
mod namespaces;
mod outage;
mod policy_fixtures;
mod propagation;
mod proxy_socket;
mod readiness;
mod recovery;
mod revert_authorization;
mod routing;
mod security;
mod shutdown;
mod tutorial_manifests;
mod watch_resume;
mod xds;
