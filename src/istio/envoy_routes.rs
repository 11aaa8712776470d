//! A sidecar's route table as Envoy has it: the virtual host for one host in the route
//! configuration of one port (from istiod's config dump), route by route in Envoy's order,
//! each match in words. Pure: the JSON is read elsewhere.
use serde::Serialize;
use serde_json::Value;

/// The destinations of a route: a subset of the host (`*`: every pod), or `host/subset` for
/// a cluster of another host.
pub type Destinations = Vec<(String, u64)>;

/// One route of the virtual host.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnvoyRoute {
    /// Envoy's route name: the VirtualService rule's `name` (and its match's), when set.
    pub name: String,
    /// What a request must have, in words; empty: every request.
    pub conditions: Vec<String>,
    pub destinations: Destinations,
    /// The Istio object the route was compiled from (`VirtualService demo/recommendation`).
    pub from: Option<String>,
}

/// The virtual host for `fqdn` in the route configuration named after `port`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RouteTable {
    pub configuration: String,
    pub virtual_host: String,
    pub routes: Vec<EnvoyRoute>,
}

/// Finds the table in route configurations as istiod sends them (Envoy JSON).
pub fn route_table(configurations: &[Value], port: u16, fqdn: &str) -> Option<RouteTable> {
    let configuration = configurations.iter().find(|c| c["name"].as_str() == Some(&port.to_string()))?;
    let hosts = configuration["virtualHosts"].as_array()?;
    let named = |host: &&Value| host["domains"].as_array().is_some_and(|d| d.iter().any(|d| d.as_str() == Some(fqdn)));
    let host = hosts.iter().find(named)?;
    let routes = host["routes"].as_array().into_iter().flatten().map(|route| envoy_route(route, fqdn)).collect();
    Some(RouteTable {
        configuration: port.to_string(),
        virtual_host: host["name"].as_str().unwrap_or_default().to_owned(),
        routes,
    })
}

fn envoy_route(route: &Value, fqdn: &str) -> EnvoyRoute {
    EnvoyRoute {
        name: route["name"].as_str().unwrap_or_default().to_owned(),
        conditions: conditions(&route["match"]),
        destinations: destinations(&route["route"], fqdn),
        from: origin(route["metadata"]["filterMetadata"]["istio"]["config"].as_str()),
    }
}

/// `RouteMatch` in words: the path, then each header (pseudo-headers by their role) and
/// query parameter condition.
fn conditions(spec: &Value) -> Vec<String> {
    let any_case = if spec["caseSensitive"] == false { " (any case)" } else { "" };
    let mut words = Vec::new();
    if let Some(prefix) = spec["prefix"].as_str().filter(|prefix| *prefix != "/") {
        words.push(format!("path starts with {prefix}{any_case}"));
    } else if let Some(path) = spec["path"].as_str() {
        words.push(format!("path is {path}{any_case}"));
    } else if let Some(regex) = spec["safeRegex"]["regex"].as_str() {
        words.push(format!("path matches {regex}"));
    } else if let Some(prefix) = spec["pathSeparatedPrefix"].as_str().filter(|prefix| *prefix != "/") {
        words.push(format!("path is {prefix} or below it{any_case}"));
    }
    for header in spec["headers"].as_array().into_iter().flatten() {
        let name = match header["name"].as_str().unwrap_or_default() {
            ":method" => "method".to_owned(),
            ":authority" => "authority".to_owned(),
            ":scheme" => "scheme".to_owned(),
            other => format!("header {other}"),
        };
        words.push(condition(&name, header, header["invertMatch"] == true));
    }
    for parameter in spec["queryParameters"].as_array().into_iter().flatten() {
        let name = format!("query parameter {}", parameter["name"].as_str().unwrap_or_default());
        words.push(condition(&name, parameter, false));
    }
    words
}

fn condition(name: &str, matcher: &Value, inverted: bool) -> String {
    let not = if inverted { "not " } else { "" };
    if matcher["presentMatch"] == true {
        return if inverted { format!("{name} is absent") } else { format!("{name} is present") };
    }
    let string = &matcher["stringMatch"];
    let text = |field: &str| string[field].as_str().map(str::to_owned);
    let (verb, value) = if let Some(exact) = text("exact") {
        ("is", exact)
    } else if let Some(prefix) = text("prefix") {
        ("starts with", prefix)
    } else if let Some(regex) = string["safeRegex"]["regex"].as_str() {
        ("matches", regex.to_owned())
    } else if let Some(suffix) = text("suffix") {
        ("ends with", suffix)
    } else {
        ("contains", text("contains").unwrap_or_default())
    };
    match (inverted, verb) {
        (true, "is") => format!("{name} is not {value}"),
        _ => format!("{name} {not}{verb} {value}"),
    }
}

fn destinations(action: &Value, fqdn: &str) -> Destinations {
    let named = |cluster: &str| match cluster.split('|').collect::<Vec<_>>().as_slice() {
        [_, _, "", host] if *host == fqdn => "*".to_owned(),
        [_, _, subset, host] if *host == fqdn => (*subset).to_owned(),
        [_, _, "", host] => (*host).to_owned(),
        [_, _, subset, host] => format!("{host}/{subset}"),
        _ => cluster.to_owned(),
    };
    if let Some(cluster) = action["cluster"].as_str() {
        return vec![(named(cluster), 100)];
    }
    let clusters = action["weightedClusters"]["clusters"].as_array().into_iter().flatten();
    clusters.map(|c| (named(c["name"].as_str().unwrap_or_default()), c["weight"].as_u64().unwrap_or(0))).collect()
}

/// `/apis/networking.istio.io/v1/namespaces/demo/virtual-service/recommendation` →
/// `VirtualService demo/recommendation`.
fn origin(path: Option<&str>) -> Option<String> {
    let parts: Vec<&str> = path?.trim_start_matches('/').split('/').collect();
    let [.., "namespaces", namespace, kind, name] = parts.as_slice() else { return Some(path?.to_owned()) };
    let kind = match *kind {
        "virtual-service" => "VirtualService",
        "http-route" => "HTTPRoute",
        other => other,
    };
    Some(format!("{kind} {namespace}/{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const FQDN: &str = "recommendation.demo.svc.cluster.local";

    fn cluster(subset: &str) -> String {
        format!("outbound|8080|{subset}|{FQDN}")
    }

    /// What istiod sent a customer sidecar for the tutorial's Firefox rule and 90/10 split.
    fn configurations() -> Vec<Value> {
        let config = "/apis/networking.istio.io/v1/namespaces/demo/virtual-service/recommendation";
        let metadata = json!({"filterMetadata": {"istio": {"config": config}}});
        vec![
            json!({"name": "80", "virtualHosts": [{"name": format!("{FQDN}:80"), "domains": [FQDN], "routes": []}]}),
            json!({"name": "8080", "virtualHosts": [
                {"name": "customer.demo.svc.cluster.local:8080", "domains": ["customer"], "routes": []},
                {"name": format!("{FQDN}:8080"), "domains": [FQDN, "recommendation"], "routes": [
                    {"name": "firefox", "metadata": metadata,
                     "match": {"prefix": "/", "headers": [
                        {"name": "baggage-user-agent", "stringMatch": {"safeRegex": {"regex": ".*Firefox.*"}}},
                        {"name": "x-stable", "stringMatch": {"exact": "yes"}, "invertMatch": true},
                        {"name": ":method", "stringMatch": {"exact": "GET"}}]},
                     "route": {"cluster": cluster("version-v2")}},
                    {"match": {"path": "/Admin", "caseSensitive": false,
                               "queryParameters": [{"name": "debug", "presentMatch": true}]},
                     "route": {"cluster": "outbound|8080||recommendation.demo.svc.cluster.local"}},
                    {"match": {"prefix": "/"}, "metadata": metadata,
                     "route": {"weightedClusters": {"clusters": [
                        {"name": cluster("version-v1"), "weight": 90}, {"name": cluster("version-v2"), "weight": 10}]}}}
                ]}
            ]}),
        ]
    }

    #[test]
    fn the_virtual_host_of_the_port_reads_route_by_route_in_words() {
        let table = route_table(&configurations(), 8080, FQDN).unwrap();
        assert_eq!(table.virtual_host, format!("{FQDN}:8080"));
        let firefox = &table.routes[0];
        assert_eq!(firefox.name, "firefox");
        assert_eq!(
            firefox.conditions,
            ["header baggage-user-agent matches .*Firefox.*", "header x-stable is not yes", "method is GET"]
        );
        assert_eq!(firefox.destinations, [("version-v2".to_owned(), 100)]);
        assert_eq!(firefox.from.as_deref(), Some("VirtualService demo/recommendation"));
        assert_eq!(table.routes[1].conditions, ["path is /Admin (any case)", "query parameter debug is present"]);
        assert_eq!(table.routes[1].destinations, [("*".to_owned(), 100)]);
        let split = &table.routes[2];
        assert!(split.conditions.is_empty(), "every request");
        assert_eq!(split.destinations, [("version-v1".to_owned(), 90), ("version-v2".to_owned(), 10)]);
        assert!(route_table(&configurations(), 9080, FQDN).is_none());
        assert!(route_table(&configurations(), 8080, "other.demo.svc.cluster.local").is_none());
    }
}
