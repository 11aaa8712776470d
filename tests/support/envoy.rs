//! Which route Envoy gives a request, from a virtual host as istiod sends it (the JSON the
//! `xds-client` prints). Written from Envoy's API documentation of `config.route.v3`, not
//! from signalbox's tester, so that comparing the two means something:
//!
//! - A virtual host's routes are tried in order; the first whose `RouteMatch` matches wins;
//!   none matching is a 404 (`NR`).
//! - `RouteMatch`: one path specifier — `prefix` (the beginning of `:path`, query included),
//!   `path` (all of `:path` once the query string is removed), `safe_regex` (the whole path
//!   without the query string), `path_separated_prefix` (the path without the query is the
//!   prefix or continues it with `/`); `case_sensitive` (default true) applies to `prefix`,
//!   `path` and `path_separated_prefix`, not to `safe_regex`. Then every `headers` matcher
//!   and every `query_parameters` matcher must match.
//! - `HeaderMatcher`: pseudo-headers (`:method`, `:authority`, `:scheme`, `:path`) are
//!   headers; names compare case-insensitively. A missing header is an empty value with
//!   `treat_missing_header_as_empty`, else only `present_match` can match it (as absent).
//!   `string_match` (`exact`, `prefix`, `suffix`, `contains`, `safe_regex` over the whole
//!   value, `ignore_case`) or `present_match`; `invert_match` inverts the result.
//! - `QueryParameterMatcher`: the named parameter's value (first occurrence) meets
//!   `string_match`, or `present_match` asks only that it be there.
//! - The route's `route.cluster`, or `route.weighted_clusters.clusters` with weights.
use std::collections::BTreeMap;

use serde_json::Value;

/// A request as Envoy sees it.
#[derive(Clone, Debug)]
pub struct Request {
    /// `:path`, with the query string.
    pub path: String,
    pub method: String,
    pub authority: String,
    pub scheme: String,
    /// Other headers; names in any case.
    pub headers: BTreeMap<String, String>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        match name {
            ":path" => Some(&self.path),
            ":method" => Some(&self.method),
            ":authority" | "host" => Some(&self.authority),
            ":scheme" => Some(&self.scheme),
            _ => self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str()),
        }
    }

    fn path_without_query(&self) -> &str {
        self.path.split_once('?').map_or(&self.path, |(path, _)| path)
    }

    fn query_parameter(&self, name: &str) -> Option<&str> {
        let query = self.path.split_once('?')?.1;
        query
            .split('&')
            .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
            .find(|(key, _)| *key == name)
            .map(|(_, v)| v)
    }
}

/// The index of the route the request takes in `virtual_host`, and its clusters with their
/// weights; None: no route matches (404).
pub fn route_for(virtual_host: &Value, request: &Request) -> Option<(usize, BTreeMap<String, u64>)> {
    let routes = virtual_host["routes"].as_array()?;
    let (index, route) = routes.iter().enumerate().find(|(_, route)| route_matches(&route["match"], request))?;
    Some((index, clusters(&route["route"])))
}

fn route_matches(spec: &Value, request: &Request) -> bool {
    let case_sensitive = spec["caseSensitive"].as_bool().unwrap_or(true);
    let compare = |a: &str, b: &str| if case_sensitive { a == b } else { a.eq_ignore_ascii_case(b) };
    let starts = |value: &str, prefix: &str| value.get(..prefix.len()).is_some_and(|start| compare(start, prefix));
    let path = request.path_without_query();
    let path_matches = if let Some(prefix) = spec["prefix"].as_str() {
        starts(&request.path, prefix)
    } else if let Some(exact) = spec["path"].as_str() {
        compare(path, exact)
    } else if let Some(regex) = spec["safeRegex"]["regex"].as_str() {
        full_match(regex, path)
    } else if let Some(prefix) = spec["pathSeparatedPrefix"].as_str() {
        starts(path, prefix) && (path.len() == prefix.len() || path.as_bytes()[prefix.len()] == b'/')
    } else {
        false
    };
    let list = |field: &str| spec[field].as_array().cloned().unwrap_or_default();
    path_matches
        && list("headers").iter().all(|matcher| header_matches(matcher, request))
        && list("queryParameters").iter().all(|matcher| query_parameter_matches(matcher, request))
}

fn header_matches(matcher: &Value, request: &Request) -> bool {
    let name = matcher["name"].as_str().unwrap_or_default();
    let invert = matcher["invertMatch"].as_bool().unwrap_or(false);
    let present = matcher["presentMatch"].as_bool();
    let value = match request.header(name) {
        Some(value) => Some(value),
        None if matcher["treatMissingHeaderAsEmpty"].as_bool().unwrap_or(false) => Some(""),
        None => None,
    };
    let matched = match (value, present) {
        (value, Some(wanted)) => value.is_some() == wanted,
        (None, None) => false,
        (Some(value), None) => string_matches(&matcher["stringMatch"], value),
    };
    matched != invert
}

fn query_parameter_matches(matcher: &Value, request: &Request) -> bool {
    let value = request.query_parameter(matcher["name"].as_str().unwrap_or_default());
    match (value, matcher["presentMatch"].as_bool()) {
        (value, Some(true)) => value.is_some(),
        (Some(value), _) => string_matches(&matcher["stringMatch"], value),
        (None, _) => false,
    }
}

/// `type.matcher.v3.StringMatcher`.
fn string_matches(matcher: &Value, value: &str) -> bool {
    let ignore_case = matcher["ignoreCase"].as_bool().unwrap_or(false);
    let fold = |text: &str| if ignore_case { text.to_ascii_lowercase() } else { text.to_owned() };
    let (value, text) = (fold(value), |field: &str| matcher[field].as_str().map(fold));
    if let Some(exact) = text("exact") {
        value == exact
    } else if let Some(prefix) = text("prefix") {
        value.starts_with(&prefix)
    } else if let Some(suffix) = text("suffix") {
        value.ends_with(&suffix)
    } else if let Some(contains) = text("contains") {
        value.contains(&contains)
    } else if let Some(regex) = matcher["safeRegex"]["regex"].as_str() {
        full_match(regex, &value)
    } else {
        false
    }
}

/// RE2 semantics as Envoy uses them: the regex must match the whole value.
fn full_match(regex: &str, value: &str) -> bool {
    regex::Regex::new(&format!("^(?:{regex})$")).is_ok_and(|regex| regex.is_match(value))
}

fn clusters(action: &Value) -> BTreeMap<String, u64> {
    if let Some(cluster) = action["cluster"].as_str() {
        return BTreeMap::from([(cluster.to_owned(), 100)]);
    }
    let weighted = action["weightedClusters"]["clusters"].as_array().cloned().unwrap_or_default();
    weighted
        .iter()
        .map(|c| (c["name"].as_str().unwrap_or_default().to_owned(), c["weight"].as_u64().unwrap_or(0)))
        .collect()
}
