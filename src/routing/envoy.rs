//! The proxy's own route table for a host, as seen from one workload: read from istiod for a
//! connected sidecar of that workload, and held against the routes the console's model
//! predicts istiod compiles for it (`policy::expected_routes`).
use serde::Serialize;

use crate::change::reads::Workload;
use crate::istio::envoy_routes::{self, RouteTable};
use crate::policy;

use super::{Host, Routing, RoutingError};

/// What a workload's sidecar has for a host.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvoyView {
    pub workload: String,
    /// The sidecar read (`<pod>.<namespace>`).
    pub proxy: String,
    pub port: u16,
    /// None: the sidecar has no virtual host for the host on that port.
    pub table: Option<RouteTable>,
    /// Per route, the rule of the host's policy it came from (1-based), when the model
    /// predicts the same routes.
    pub rules: Vec<Option<usize>>,
    /// How the table differs from the model's prediction; None: it agrees.
    pub difference: Option<String>,
}

impl Routing {
    /// The route table istiod sends a sidecar of `workload` for `host` (on the Service's
    /// first port), compared with the prediction. Refused when istiod is not configured
    /// (503) or no sidecar of the workload is connected to it (404).
    pub async fn envoy_view(&self, host: Host<'_>, workload: &Workload) -> Result<EnvoyView, RoutingError> {
        let Some(istiod) = self.changes.propagation().istiod() else {
            return Err(RoutingError::Unavailable("istiod is not configured (--istiod-url)".into()));
        };
        let unreachable = |error: crate::propagation::IstiodUnreachable| RoutingError::Unavailable(error.to_string());
        let snapshot = istiod.snapshot(host.namespace).await.map_err(unreachable)?;
        let proxy = snapshot
            .values()
            .map(|sync| sync.name.clone())
            .filter(|name| crate::inventory::runs_in_pod_of(name, &workload.deployment))
            .min()
            .ok_or_else(|| {
                RoutingError::NotFound(format!("no sidecar of {} is connected to istiod", workload.deployment))
            })?;
        let port = self.reads.service_ports(host.namespace, host.name).first().copied().unwrap_or(80);
        let configurations = istiod.route_configurations(&proxy).await.map_err(unreachable)?;
        let fqdn = format!("{}.{}.svc.cluster.local", host.name, host.namespace);
        let table = envoy_routes::route_table(&configurations, port, &fqdn);
        // The prediction models a VirtualService's first-match order; an HTTPRoute's routes
        // are sorted by istiod, so its table is shown without one.
        let routing = self.reads.cached_routing(host.namespace, host.name);
        let first_match = routing.precedence() == policy::Precedence::FirstMatch;
        let policy = routing.policy(host.name).ok().filter(|_| first_match);
        let (rules, difference) = compare(table.as_ref(), policy.as_ref(), workload, port);
        Ok(EnvoyView { workload: workload.deployment.clone(), proxy, port, table, rules, difference })
    }
}

/// Each route's rule when the table has the routes the model predicts, with the same
/// destinations; else why not.
fn compare(
    table: Option<&RouteTable>,
    policy: Option<&policy::RoutingPolicy>,
    workload: &Workload,
    port: u16,
) -> (Vec<Option<usize>>, Option<String>) {
    let routes = table.map(|t| t.routes.as_slice()).unwrap_or_default();
    let Some(policy) = policy.filter(|p| !p.rules.is_empty()) else {
        return (vec![None; routes.len()], None);
    };
    let expected = policy::expected_routes(policy, &workload.caller, port);
    if expected.len() != routes.len() {
        let difference = format!(
            "the console's model predicts {} route(s) for this sidecar, istiod sent {}",
            expected.len(),
            routes.len()
        );
        return (vec![None; routes.len()], Some(difference));
    }
    for (position, (rule, route)) in expected.iter().zip(routes).enumerate() {
        let mut predicted: Vec<(String, u64)> = policy.rules[*rule]
            .route
            .iter()
            .map(|s| (s.subset.clone(), u64::from(s.weight.percent().unwrap_or(0))))
            .collect();
        let mut sent = route.destinations.clone();
        predicted.sort();
        sent.sort();
        if predicted != sent {
            let difference = format!(
                "route {} sends to {} where the console's model predicts rule {}'s {}",
                position + 1,
                shares(&sent),
                rule + 1,
                shares(&predicted)
            );
            return (vec![None; routes.len()], Some(difference));
        }
    }
    (expected.iter().map(|rule| Some(rule + 1)).collect(), None)
}

fn shares(destinations: &[(String, u64)]) -> String {
    destinations.iter().map(|(to, weight)| format!("{to} {weight}%")).collect::<Vec<_>>().join(", ")
}
