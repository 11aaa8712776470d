//! The route tester's evaluation, shared by the page and the API.
use crate::policy::{self, Evaluation, RoutingPolicy, user_regex};

/// Which rule `request` would match under `policy`. Each regex is compiled once (and within
/// a size limit); a policy whose regexes are long in total is evaluated on the blocking
/// pool, so that compiling them does not stall an async worker serving other requests.
pub async fn evaluate(policy: RoutingPolicy, request: policy::Request, precedence: policy::Precedence) -> Evaluation {
    if policy::regex_source_length(&policy) <= user_regex::HEAVY_SOURCE_LENGTH {
        return policy::evaluate(&policy, &request, precedence);
    }
    let evaluating = tokio::task::spawn_blocking(move || policy::evaluate(&policy, &request, precedence));
    evaluating.await.unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()))
}
