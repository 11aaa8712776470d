//! The route tester's evaluation, shared by the page and the API.
use crate::policy::{self, Evaluation, RoutingPolicy, user_regex};

use super::error::AppError;

/// Which rule `request` would match under `policy`. Each regex is compiled once (and within
/// a size limit); a policy whose regexes are long in total is evaluated on the blocking
/// pool, so that compiling them does not stall an async worker serving other requests.
pub async fn evaluate(
    policy: RoutingPolicy,
    request: policy::Request,
    precedence: policy::Precedence,
) -> Result<Evaluation, AppError> {
    if policy::regex_source_length(&policy) <= user_regex::HEAVY_SOURCE_LENGTH {
        return Ok(policy::evaluate(&policy, &request, precedence));
    }
    tokio::task::spawn_blocking(move || policy::evaluate(&policy, &request, precedence))
        .await
        .map_err(|error| AppError::Internal(format!("evaluating the route test: {error}")))
}
