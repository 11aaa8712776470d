//! A small client for Prometheus's HTTP API: instant queries whose answer is a vector.
//!
//! Every call is bounded by [`QUERY_TIMEOUT`], and every answer — an HTML error page from a
//! proxy, a truncated body, `NaN`, a matrix instead of a vector — becomes a typed
//! [`TrafficError`], never a panic: a canary page must render, and an automatic decision must
//! fail closed, whatever Prometheus says.
pub use crate::istio::Sample;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;

/// How long one query may take, connecting included. Long enough for a busy in-cluster
/// Prometheus, short enough that a page or an analysis round does not hang on a dead one.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(3);

/// The largest answer read. Per-version sums are a few hundred bytes; anything near this is
/// not an answer to our queries, and reading it would only cost memory.
const MAX_ANSWER_BYTES: usize = 4 * 1024 * 1024;

/// Why Prometheus gave no usable numbers.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TrafficError {
    /// No answer: connection refused, DNS failure, timeout, or a proxy saying the upstream is down.
    #[error("Prometheus at {url} is unreachable: {reason}")]
    Unreachable { url: String, reason: String },
    /// An answer that is not a successful vector result.
    #[error("Prometheus at {url} gave an unusable answer: {reason}")]
    BadAnswer { url: String, reason: String },
}

/// `--prometheus-url` is not a plain http URL.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid Prometheus URL {url:?}: {reason}")]
pub struct InvalidPrometheusUrl {
    pub url: String,
    pub reason: String,
}

/// One series of a range query: its labels and its `(unix seconds, value)` points.
#[derive(Clone, Debug, PartialEq)]
pub struct RangeSeries {
    pub labels: BTreeMap<String, String>,
    pub points: Vec<(f64, f64)>,
}

/// A Prometheus server, e.g. `http://prometheus.istio-system:9090`. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Prometheus {
    base: String,
    http: reqwest::Client,
}

impl Prometheus {
    /// A client for the Prometheus at `base_url` (a path prefix such as `/prometheus` is kept).
    /// Only `http://` is accepted: in-cluster Prometheus serves plain http, and signalbox is
    /// built without a TLS stack for it.
    pub fn new(base_url: &str) -> Result<Prometheus, InvalidPrometheusUrl> {
        let invalid = |reason: &str| InvalidPrometheusUrl { url: base_url.to_owned(), reason: reason.to_owned() };
        let url = reqwest::Url::parse(base_url).map_err(|error| invalid(&error.to_string()))?;
        if url.scheme() != "http" {
            return Err(invalid("only http:// is supported"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("the URL names no host"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("the URL must not have a query or fragment"));
        }
        let http = reqwest::Client::builder()
            .timeout(QUERY_TIMEOUT)
            .connect_timeout(QUERY_TIMEOUT)
            .build()
            .map_err(|error| invalid(&format!("cannot build an HTTP client: {error}")))?;
        Ok(Prometheus { base: base_url.trim_end_matches('/').to_owned(), http })
    }

    /// The base URL, as shown to people ("Prometheus at … is unreachable").
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Evaluates `promql` now.
    pub async fn query(&self, promql: &str) -> Result<Vec<Sample>, TrafficError> {
        self.query_at(promql, SystemTime::now()).await
    }

    /// Evaluates `promql` at `time`. Queries that are combined (requests and errors of the
    /// same versions) use the same time, so they see the same scrapes.
    pub async fn query_at(&self, promql: &str, time: SystemTime) -> Result<Vec<Sample>, TrafficError> {
        let seconds = time.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64();
        let time = format!("{seconds:.3}");
        let response = self
            .http
            .get(format!("{}/api/v1/query", self.base))
            .query(&[("query", promql), ("time", time.as_str())])
            .send()
            .await
            .map_err(|error| self.unreachable(&error))?;
        let status = response.status().as_u16();
        let body = self.read_bounded(response).await?;
        parse_vector(status, &body).map_err(|answer| self.answer_error(answer))
    }

    /// Evaluates `promql` every `step` from `start` to `end` (a range query): one series of
    /// points per label set.
    pub async fn query_range(
        &self,
        promql: &str,
        start: SystemTime,
        end: SystemTime,
        step: Duration,
    ) -> Result<Vec<RangeSeries>, TrafficError> {
        let unix =
            |time: SystemTime| format!("{:.3}", time.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64());
        let (start, end, step) = (unix(start), unix(end), format!("{:.3}", step.as_secs_f64()));
        let response = self
            .http
            .get(format!("{}/api/v1/query_range", self.base))
            .query(&[("query", promql), ("start", &start), ("end", &end), ("step", &step)])
            .send()
            .await
            .map_err(|error| self.unreachable(&error))?;
        let status = response.status().as_u16();
        let body = self.read_bounded(response).await?;
        parse_matrix(status, &body).map_err(|answer| self.answer_error(answer))
    }

    fn answer_error(&self, answer: Answer) -> TrafficError {
        match answer {
            Answer::Unavailable(reason) => TrafficError::Unreachable { url: self.base.clone(), reason },
            Answer::Unusable(reason) => TrafficError::BadAnswer { url: self.base.clone(), reason },
        }
    }

    async fn read_bounded(&self, mut response: reqwest::Response) -> Result<Vec<u8>, TrafficError> {
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|error| self.unreachable(&error))? {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(TrafficError::BadAnswer {
                    url: self.base.clone(),
                    reason: format!("the answer is larger than {MAX_ANSWER_BYTES} bytes"),
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn unreachable(&self, error: &reqwest::Error) -> TrafficError {
        let reason = if error.is_timeout() {
            format!("no answer within {} s", QUERY_TIMEOUT.as_secs())
        } else {
            // The URL would repeat the whole query; the innermost cause says what happened
            // ("Connection refused", "failed to lookup address").
            innermost_cause(error)
        };
        TrafficError::Unreachable { url: self.base.clone(), reason }
    }
}

fn innermost_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// What is wrong with an answer, before it is given the server's URL.
#[derive(Debug, PartialEq)]
enum Answer {
    /// A gateway's "upstream is down" (502/503/504 without Prometheus's JSON).
    Unavailable(String),
    Unusable(String),
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    #[serde(default)]
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct VectorElement {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    /// `[<unix time>, "<value>"]`: the value is a string so that NaN and ±Inf survive JSON.
    value: (serde_json::Value, String),
}

#[derive(Deserialize)]
struct MatrixElement {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    values: Vec<(f64, String)>,
}

/// Reads a range query's answer: `{"status":"success","data":{"resultType":"matrix",…}}`.
fn parse_matrix(status: u16, body: &[u8]) -> Result<Vec<RangeSeries>, Answer> {
    let result = parse_envelope(status, body, "matrix")?;
    let elements: Vec<MatrixElement> = serde_json::from_value(result)
        .map_err(|error| Answer::Unusable(format!("malformed matrix result ({error})")))?;
    elements
        .into_iter()
        .map(|element| {
            let points = element
                .values
                .into_iter()
                .map(|(time, text)| Ok((time, number(&text)?)))
                .collect::<Result<Vec<_>, Answer>>()?;
            Ok(RangeSeries { labels: element.metric, points })
        })
        .collect()
}

fn number(text: &str) -> Result<f64, Answer> {
    text.parse::<f64>().map_err(|_| Answer::Unusable(format!("the value {text:?} is no number")))
}

/// Reads an instant query's answer: `{"status":"success","data":{"resultType":"vector",…}}`.
fn parse_vector(status: u16, body: &[u8]) -> Result<Vec<Sample>, Answer> {
    let result = parse_envelope(status, body, "vector")?;
    let elements: Vec<VectorElement> = serde_json::from_value(result)
        .map_err(|error| Answer::Unusable(format!("malformed vector result ({error})")))?;
    elements
        .into_iter()
        .map(|element| Ok(Sample { labels: element.metric, value: number(&element.value.1)? }))
        .collect()
}

/// The result of a successful answer of the expected type, or why there is none.
fn parse_envelope(status: u16, body: &[u8], expected: &str) -> Result<serde_json::Value, Answer> {
    let envelope: Envelope = match serde_json::from_slice(body) {
        Ok(envelope) => envelope,
        Err(_) if matches!(status, 502..=504) => {
            return Err(Answer::Unavailable(format!("HTTP {status} from a proxy in front of it")));
        }
        Err(error) => return Err(Answer::Unusable(format!("HTTP {status}, not Prometheus JSON ({error})"))),
    };
    if envelope.status != "success" {
        let kind = envelope.error_type.unwrap_or_else(|| "error".into());
        let message = envelope.error.unwrap_or_default();
        return Err(Answer::Unusable(format!("HTTP {status}, the query failed ({kind}: {message})")));
    }
    let Some(data) = envelope.data else {
        return Err(Answer::Unusable("a successful answer without data".into()));
    };
    if data.result_type != expected {
        return Err(Answer::Unusable(format!("expected a {expected} result, got a {}", data.result_type)));
    }
    Ok(data.result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(status: u16, body: &str) -> Result<Vec<Sample>, Answer> {
        parse_vector(status, body.as_bytes())
    }

    fn unusable(status: u16, body: &str) -> String {
        match parse(status, body) {
            Err(Answer::Unusable(reason)) => reason,
            other => panic!("expected an unusable answer, got {other:?}"),
        }
    }

    #[test]
    fn a_matrix_gives_each_series_points() {
        let body = r#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"destination_version":"v2"},"values":[[1700000000,"1.5"],[1700000005,"NaN"]]}]}}"#;
        let series = parse_matrix(200, body.as_bytes()).unwrap();
        assert_eq!(series[0].labels["destination_version"], "v2");
        assert_eq!(series[0].points[0], (1700000000.0, 1.5));
        assert!(series[0].points[1].1.is_nan());
        let vector = r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert!(matches!(parse_matrix(200, vector.as_bytes()), Err(Answer::Unusable(_))));
    }

    #[test]
    fn a_vector_gives_labels_and_values_including_nan_and_infinity() {
        let samples = parse(
            200,
            r#"{"status":"success","data":{"resultType":"vector","result":[
                {"metric":{"destination_version":"v1"},"value":[1700000000.5,"12.25"]},
                {"metric":{"destination_version":"v2"},"value":[1700000000.5,"NaN"]},
                {"metric":{},"value":[1700000000.5,"+Inf"]}]}}"#,
        )
        .unwrap();
        assert_eq!(samples.len(), 3);
        assert_eq!(samples[0].labels["destination_version"], "v1");
        assert_eq!(samples[0].value, 12.25);
        assert!(samples[1].value.is_nan());
        assert_eq!(samples[2].value, f64::INFINITY);
        assert!(samples[2].labels.is_empty());
    }

    #[test]
    fn an_empty_vector_is_no_samples() {
        assert_eq!(parse(200, r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#), Ok(vec![]));
    }

    #[test]
    fn prometheus_errors_keep_its_message() {
        let reason =
            unusable(400, r#"{"status":"error","errorType":"bad_data","error":"1:5: parse error: unexpected <EOF>"}"#);
        assert_eq!(reason, "HTTP 400, the query failed (bad_data: 1:5: parse error: unexpected <EOF>)");
        let reason = unusable(503, r#"{"status":"error","errorType":"timeout","error":"query timed out"}"#);
        assert!(reason.contains("timeout: query timed out"), "{reason}");
    }

    #[test]
    fn a_gateway_error_page_means_unreachable_other_pages_mean_unusable() {
        assert_eq!(
            parse(503, "<html>no healthy upstream</html>"),
            Err(Answer::Unavailable("HTTP 503 from a proxy in front of it".into()))
        );
        assert!(unusable(200, "<html>login</html>").starts_with("HTTP 200, not Prometheus JSON"));
        assert!(unusable(404, "404 page not found").starts_with("HTTP 404"));
    }

    #[test]
    fn other_shapes_are_unusable_not_panics() {
        let cases = [
            ("", "not Prometheus JSON"),
            ("{", "not Prometheus JSON"),
            ("[]", "not Prometheus JSON"),
            (r#"{"status":"success"}"#, "without data"),
            (r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#, "got a matrix"),
            (r#"{"status":"success","data":{"resultType":"scalar","result":[1,"2"]}}"#, "got a scalar"),
            (r#"{"status":"success","data":{"resultType":"vector","result":{}}}"#, "malformed vector"),
            (r#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1]}]}}"#, "malformed vector"),
            (r#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1,2]}]}}"#, "malformed vector"),
            (
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":1},"value":[1,"2"]}]}}"#,
                "malformed vector",
            ),
            (r#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"many"]}]}}"#, "no number"),
            (r#"{"status":"weird"}"#, "the query failed (error: )"),
        ];
        for (body, expected) in cases {
            let reason = unusable(200, body);
            assert!(reason.contains(expected), "{body}: {reason}");
        }
    }

    #[test]
    fn only_plain_http_urls_with_a_host_are_accepted() {
        assert_eq!(
            Prometheus::new("http://prometheus.istio-system:9090/").unwrap().url(),
            "http://prometheus.istio-system:9090"
        );
        assert_eq!(Prometheus::new("http://p:9090/prometheus").unwrap().url(), "http://p:9090/prometheus");
        for bad in ["https://p:9090", "prometheus:9090", "", "http://", "http://p:9090/?x=1", "ftp://p"] {
            assert!(Prometheus::new(bad).is_err(), "{bad} must be refused");
        }
    }

    proptest::proptest! {
        #[test]
        fn the_parser_never_panics_on_any_answer(status in 100u16..600, body in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = parse_vector(status, &body);
        }
    }
}
