//! The PromQL signalbox sends, built by small pure functions so that each query can be read
//! and tested on its own.
//!
//! All queries read Istio's standard metrics as the *destination* sidecar reports them: the
//! server side sees every request that reached a version, including ones the client side
//! never reports (e.g. from pods outside the mesh), and it reports each request once.
use std::time::Duration;

/// The requests counter every Istio sidecar exports.
pub const REQUESTS: &str = "istio_requests_total";
/// The request duration histogram's buckets (milliseconds).
pub const DURATION_BUCKETS: &str = "istio_request_duration_milliseconds_bucket";
/// The label that names the version a request reached (the pod's `version` label).
pub const VERSION_LABEL: &str = "destination_version";

/// Requests per second per version over the window.
pub fn request_rate(namespace: &str, host: &str, window: Duration) -> String {
    let selector = host_selector(namespace, host);
    format!("sum by ({VERSION_LABEL}) (rate({REQUESTS}{{{selector}}}[{}]))", range(window))
}

/// Requests per second per version that failed on the server side (a 5xx response code).
pub fn server_error_rate(namespace: &str, host: &str, window: Duration) -> String {
    let selector = host_selector(namespace, host);
    format!("sum by ({VERSION_LABEL}) (rate({REQUESTS}{{{selector},response_code=~\"5..\"}}[{}]))", range(window))
}

/// The 99th percentile of request duration per version, in milliseconds, interpolated
/// within the histogram bucket it falls into (so it is as precise as Istio's buckets).
pub fn p99_latency_ms(namespace: &str, host: &str, window: Duration) -> String {
    let selector = host_selector(namespace, host);
    format!(
        "histogram_quantile(0.99, sum by ({VERSION_LABEL}, le) (rate({DURATION_BUCKETS}{{{selector}}}[{}])))",
        range(window)
    )
}

/// Requests per second of every edge of a namespace's graph: by the workload that sent them
/// (the Deployment, `unknown` from outside the mesh) and the service and version they reached.
pub fn edge_request_rate(namespace: &str, window: Duration) -> String {
    edge_rate(namespace, "", window)
}

/// The same, only requests that failed on the server side (5xx).
pub fn edge_error_rate(namespace: &str, window: Duration) -> String {
    edge_rate(namespace, ",response_code=~\"5..\"", window)
}

fn edge_rate(namespace: &str, extra: &str, window: Duration) -> String {
    let namespace = escape_label_value(namespace);
    format!(
        "sum by (source_workload, destination_service_name, {VERSION_LABEL}) (rate({REQUESTS}{{reporter=\"destination\",\
         destination_service_namespace=\"{namespace}\"{extra}}}[{}]))",
        range(window)
    )
}

/// The label matchers that select one host's requests, as its destination sidecars report them.
/// `destination_service_name` is the Service's short name (e.g. `recommendation`).
pub fn host_selector(namespace: &str, host: &str) -> String {
    format!(
        "reporter=\"destination\",destination_service_namespace=\"{}\",destination_service_name=\"{}\"",
        escape_label_value(namespace),
        escape_label_value(host)
    )
}

/// A PromQL range in whole seconds, at least one (sub-second windows round up: a zero range
/// is a syntax error, and a shorter range than asked for would hide requests).
pub fn range(window: Duration) -> String {
    let seconds = window.as_secs() + u64::from(window.subsec_nanos() > 0);
    format!("{}s", seconds.max(1))
}

/// A label value inside a double-quoted PromQL string. PromQL strings use Go's escapes, so a
/// quote or a backslash in a value must not end the string or start an escape: otherwise a
/// host name could change the query.
pub fn escape_label_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            '\r' => escaped.push_str("\\r"),
            '\t' => escaped.push_str("\\t"),
            c if c.is_control() => escaped.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => escaped.push(c),
        }
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn edge_rates_group_by_source_and_destination() {
        assert_eq!(
            edge_request_rate("tutorial", MINUTE),
            "sum by (source_workload, destination_service_name, destination_version) (rate(istio_requests_total\
             {reporter=\"destination\",destination_service_namespace=\"tutorial\"}[60s]))"
        );
        assert!(
            edge_error_rate("t\"x", MINUTE)
                .contains("destination_service_namespace=\"t\\\"x\",response_code=~\"5..\"}")
        );
    }

    #[test]
    fn the_request_rate_query_sums_the_destination_reports_by_version() {
        assert_eq!(
            request_rate("tutorial", "recommendation", MINUTE),
            "sum by (destination_version) (rate(istio_requests_total{reporter=\"destination\",\
             destination_service_namespace=\"tutorial\",destination_service_name=\"recommendation\"}[60s]))"
        );
    }

    #[test]
    fn the_error_query_counts_only_5xx_responses() {
        assert_eq!(
            server_error_rate("tutorial", "recommendation", Duration::from_secs(30)),
            "sum by (destination_version) (rate(istio_requests_total{reporter=\"destination\",\
             destination_service_namespace=\"tutorial\",destination_service_name=\"recommendation\",\
             response_code=~\"5..\"}[30s]))"
        );
    }

    #[test]
    fn the_latency_query_keeps_the_bucket_label_for_histogram_quantile() {
        assert_eq!(
            p99_latency_ms("tutorial", "recommendation", MINUTE),
            "histogram_quantile(0.99, sum by (destination_version, le) \
             (rate(istio_request_duration_milliseconds_bucket{reporter=\"destination\",\
             destination_service_namespace=\"tutorial\",destination_service_name=\"recommendation\"}[60s])))"
        );
    }

    #[test]
    fn ranges_are_whole_seconds_rounded_up_and_never_zero() {
        assert_eq!(range(Duration::from_secs(300)), "300s");
        assert_eq!(range(Duration::from_millis(1500)), "2s");
        assert_eq!(range(Duration::from_millis(1)), "1s");
        assert_eq!(range(Duration::ZERO), "1s");
    }

    #[test]
    fn label_values_cannot_end_the_string_or_inject_matchers() {
        assert_eq!(escape_label_value("recommendation"), "recommendation");
        assert_eq!(escape_label_value(r#"x",reporter=~".*"#), r#"x\",reporter=~\".*"#);
        assert_eq!(escape_label_value(r"a\"), r"a\\");
        assert_eq!(escape_label_value("a\nb\tc\r"), r"a\nb\tc\r");
        assert_eq!(escape_label_value("a\u{7}b"), r"a\u0007b");
        assert_eq!(escape_label_value("grüße"), "grüße", "non-ASCII text is valid inside PromQL strings");
        let selector = host_selector("ns\"", "h\\");
        assert!(selector.contains(r#"destination_service_namespace="ns\"""#), "{selector}");
        assert!(selector.contains(r#"destination_service_name="h\\""#), "{selector}");
    }
}
