//! Pictures of the routing, as pure values a template draws as SVG (no I/O, no JavaScript):
//!
//! - [`graph`]: the namespace's services and versions, laid out left to right along the
//!   calls the tutorial's workloads make, edges labelled with the live routing's weights;
//!   [`drawn`] keeps its SVG for views of unchanged inputs.
//! - [`observed`]: with Prometheus, the requests each edge carried.
//! - [`bars`]: each HTTP rule as a bar split by its destination weights.
//! - [`marks`]: timeouts, retries, faults, mirrors and a running canary as marked words on
//!   the bars and the edges.
//! - [`change_bars`]: those bars before and after a recorded routing change.
//! - [`steps`]: a canary's step plan as a strip, marking the current step and weight.
//! - [`sparkline`]: one measure over time against its threshold (canary success and p99).
//!
//! Every picture carries the same facts in words for its `aria-label` and `<title>`.
pub mod bars;
pub mod change_bars;
pub mod drawn;
pub mod graph;
mod layout;
pub mod marks;
pub mod observed;
pub mod sparkline;
pub mod steps;
