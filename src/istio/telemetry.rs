//! Istio's standard metrics as values: one sample of a vector query over them
//! (`istio_requests_total`, `istio_request_duration_milliseconds`), labelled as Istio labels
//! them (`source_workload`, `destination_service_name`, `destination_version`, ...).
use std::collections::BTreeMap;

/// One element of a vector result: its labels and its value (which may be `NaN` or `±Inf`:
/// `histogram_quantile` answers `NaN` when a version had no requests in the window).
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}
