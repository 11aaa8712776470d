//! signalbox: a server-rendered console for Istio routing, canaries and audit.
//!
//! Architecture, outside in:
//! - [`web`]: the axum router, handlers, extractors and the one error type.
//! - [`change`]: the one path every cluster mutation takes (authorize, validate,
//!   dry-run, audit, apply, record the outcome).
//! - [`policy`]: Istio routing policy and canaries as pure values (no I/O).
//! - [`tutorial`]: the Istio tutorial's workloads as pure values (no I/O).
//! - [`istio`]: typed Istio resources (`networking.istio.io/v1`).
//! - [`cluster`]: kube-rs client, watch caches and server-side apply.
//! - [`audit`]: the SQLite audit store.
//! - [`traffic`]: observed traffic per version from Prometheus, and canary analysis.
//! - [`autopilot`]: the background task that auto-advances canaries on that analysis.
/// mimalloc for every binary that links signalbox (the server, its tests and benchmarks, so
/// they measure what runs): a page view is mostly small allocations, and glibc's malloc and
/// free were the largest user-space cost under load (BENCHMARKS.md, "One road").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub mod app;
pub mod audit;
pub mod audit_anchor;
pub mod authz;
pub mod autopilot;
pub mod change;
pub mod cluster;
pub mod config;
pub mod gateway_api;
pub mod inventory;
pub mod istio;
pub mod managed;
pub mod metrics;
pub mod pictures;
pub mod policy;
pub mod problem;
pub mod propagation;
pub mod routing;
pub mod traffic;
pub mod tutorial;
pub mod web;
