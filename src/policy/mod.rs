//! Routing policy domain: Istio HTTP routing of one host as a pure value (no I/O).
//!
//! - [`RoutingPolicy`] and friends: what the JSON API and forms edit.
//! - [`RoutingPolicy::from_istio`] / [`RoutingPolicy::to_istio`]: extraction from, and merging
//!   into, live VirtualService/DestinationRule objects without losing unmodelled fields.
//! - [`gateway_api`]: the same policy read from and written into a Gateway API HTTPRoute.
//! - [`lookup`]: which VirtualServices and DestinationRules route a host, by what they route.
//! - [`validate`]: field-addressed errors and warnings.
//! - [`evaluate`]: which rule and subsets a given request would get.
//! - [`summary`] / [`change_summary`]: plain-words descriptions for pages and the audit log.
//! - [`canary`]: canary releases as a state machine over the policy's weights.
pub mod canary;
mod conditions;
mod evaluate;
mod from_istio;
pub mod gateway_api;
pub mod lookup;
mod model;
mod reach;
mod route_table;
mod summary;
mod thresholds;
mod to_istio;
pub mod user_regex;
mod validate;
mod verdict;

pub use conditions::Caller;
pub use evaluate::{Evaluation, Precedence, Request, evaluate, regex_source_length, string_matches};
pub use from_istio::{Extraction, PolicyError, extract, refers_to_host};
pub use lookup::{HostObjects, Removal};
pub use model::{
    ALL_PODS, Abort, Delay, Fault, Match, Mirror, Retries, RoutingPolicy, Rule, Share, StringMatch, Subset, Weight,
};
pub use reach::{FilterTarget, Reach, backend_target, filter_targets, reaches, unjudged_filters};
pub use route_table::expected_routes;
pub use summary::{Setting, audience, change_summary, condition, removals, settings, summary};
pub use thresholds::Thresholds;
pub use validate::{
    FieldError, Severity, ValidationContext, has_errors, parse_duration_seconds, regex_problem, validate,
};
pub use verdict::{FieldHint, field_hints, locate, webhook_messages};

#[cfg(test)]
mod proptests;
