//! Which Envoy routes istiod compiles from a VirtualService's rules for one proxy and port
//! (`BuildHTTPRoutesForVirtualService` in pilot/pkg/networking/core/route/route.go): one
//! route per match entry, in order (one for a rule without a match), leaving out entries for
//! another port or for other proxies, and none after the first catch-all. What the routing
//! page compares the proxy's own table with.
use super::conditions::{Caller, proxies_given_the_route};
use super::model::{Match, RoutingPolicy, StringMatch};

/// The rule (by index) of each route the proxy `caller` gets on `port`, in Envoy's order.
pub fn expected_routes(policy: &RoutingPolicy, caller: &Caller, port: u16) -> Vec<usize> {
    let mut routes = Vec::new();
    for (index, rule) in policy.rules.iter().enumerate() {
        let Some(entries) = rule.matches.as_deref().filter(|entries| !entries.is_empty()) else {
            routes.push(index);
            return routes;
        };
        for entry in entries {
            let wanted_port = entry.other.get("port").and_then(serde_json::Value::as_u64);
            if wanted_port.is_some_and(|wanted| wanted != u64::from(port))
                || !proxies_given_the_route(&entry.other, caller)
            {
                continue;
            }
            routes.push(index);
            if catches_all(entry) {
                return routes;
            }
        }
    }
    routes
}

/// Istio's `IsCatchAllRoute`: a path prefix of `/` (or none, or regex `.*`) and no header or
/// query parameter condition (method, scheme, authority and `withoutHeaders` are headers).
fn catches_all(entry: &Match) -> bool {
    let any_path = match &entry.uri {
        None => true,
        Some(StringMatch::Prefix(prefix)) => prefix == "/",
        Some(StringMatch::Regex(regex)) => regex == ".*",
        Some(StringMatch::Exact(_)) => false,
    };
    let headers = entry.headers.as_ref().is_some_and(|h| !h.is_empty())
        || entry.method.is_some()
        || ["withoutHeaders", "scheme", "authority"].iter().any(|field| entry.other.contains_key(*field));
    any_path && !headers && entry.query_params.as_ref().is_none_or(|q| q.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(rules: serde_json::Value) -> RoutingPolicy {
        serde_json::from_value(json!({"host": "r", "rules": rules})).unwrap()
    }

    fn customer() -> Caller {
        Caller { namespace: "demo".into(), labels: [("app".to_owned(), "customer".to_owned())].into() }
    }

    #[test]
    fn one_route_per_entry_for_this_proxy_and_port_until_the_first_catch_all() {
        let p = policy(json!([
            {"match": [{"headers": {"x-user": {"exact": "bob"}}}, {"sourceLabels": {"app": "preference"}}], "route": {"a": 100}},
            {"match": [{"port": 9090}, {"uri": {"prefix": "/api"}}], "route": {"b": 100}},
            {"match": [{"uri": {"prefix": "/"}, "sourceLabels": {"app": "customer"}}], "route": {"c": 100}},
            {"route": {"d": 100}}
        ]));
        assert_eq!(expected_routes(&p, &customer(), 8080), [0, 1, 2], "rule 3's entry catches all: rule 4 is left out");
        let preference = Caller { labels: [("app".to_owned(), "preference".to_owned())].into(), ..customer() };
        assert_eq!(expected_routes(&p, &preference, 9090), [0, 0], "its sourceLabels entry catches all");
        let other = Caller { labels: [("app".to_owned(), "other".to_owned())].into(), ..customer() };
        assert_eq!(expected_routes(&p, &other, 9090), [0, 1], "a port-only entry catches all on its port");
        let with_method =
            policy(json!([{"match": [{"method": {"exact": "GET"}}], "route": {"a": 100}}, {"route": {"b": 100}}]));
        assert_eq!(expected_routes(&with_method, &customer(), 8080), [0, 1]);
    }
}
