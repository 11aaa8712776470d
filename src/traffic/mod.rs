//! What traffic each version of a host actually receives, from Prometheus, and the canary
//! analysis that decides on it.
//!
//! - [`Prometheus`]: a bounded-time client for Prometheus's HTTP API, and
//!   [`Prometheus::observe`], which reports per version: share, rate, success rate, p99 and
//!   request count ([`TrafficReport`]).
//! - [`promql`]: the queries, as pure functions (label values escaped).
//! - [`history`]: a version's success rate and p99 over the last minutes (range queries).
//! - [`analysis`]: thresholds and [`decide`] (pure): promote, abort or wait.
pub mod analysis;
pub mod history;
mod observed_edges;
pub mod prometheus;
pub mod promql;
pub mod report;

pub use analysis::{Decision, JudgedFrom, StepReach, Thresholds, Verdict, decide, judged_from};
pub use history::VersionHistory;
pub use observed_edges::ObservedEdges;
pub use prometheus::{InvalidPrometheusUrl, Prometheus, QUERY_TIMEOUT, RangeSeries, Sample, TrafficError};
pub use report::{TrafficReport, VersionTraffic};
