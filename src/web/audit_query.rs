//! The history's filters, as query parameters of the page and the API alike.
use serde::Deserialize;

use crate::audit::Filter;

use super::error::AppError;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct HistoryQuery {
    #[serde(flatten)]
    pub filter: Filter,
    /// UTC, RFC 3339 (`2026-11-24T14:00:00Z`) or a browser's `2026-11-24T14:00`.
    pub from: Option<String>,
    pub to: Option<String>,
    /// Keyset pagination: entries older than this id.
    pub before: Option<i64>,
    pub limit: Option<u32>,
}

impl HistoryQuery {
    /// The filter with its time range parsed.
    pub fn parsed(&self) -> Result<Filter, AppError> {
        let mut filter = self.filter.clone();
        filter.from_ms = parse_time("from", self.from.as_deref())?;
        filter.to_ms = parse_time("to", self.to.as_deref())?;
        Ok(filter)
    }

    /// The query string that repeats these filters (for the "Older" link), without `before`.
    pub fn query_string(&self) -> String {
        let f = &self.filter;
        let pairs = [
            ("namespace", &f.namespace),
            ("object", &f.object),
            ("actor", &f.actor),
            ("action", &f.action),
            ("outcome", &f.outcome),
            ("source", &f.source),
            ("from", &self.from),
            ("to", &self.to),
        ];
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (key, value) in pairs {
            if let Some(value) = value.as_deref().filter(|v| !v.is_empty()) {
                query.append_pair(key, value);
            }
        }
        query.finish()
    }
}

fn parse_time(field: &str, text: Option<&str>) -> Result<Option<i64>, AppError> {
    let Some(text) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    let timestamp = text
        .parse::<jiff::Timestamp>()
        .or_else(|_| text.parse::<jiff::civil::DateTime>().and_then(|dt| jiff::tz::TimeZone::UTC.to_timestamp(dt)));
    timestamp
        .map(|t| Some(t.as_millisecond()))
        .map_err(|_| AppError::invalid(field, "a UTC time like 2026-11-24T14:00:00Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_from_rfc3339_and_browser_inputs() {
        assert_eq!(parse_time("from", Some("1970-01-01T00:00:01Z")).unwrap(), Some(1000));
        assert_eq!(parse_time("from", Some("1970-01-01T00:01")).unwrap(), Some(60_000));
        assert_eq!(parse_time("from", Some("")).unwrap(), None);
        assert!(parse_time("from", Some("yesterday")).is_err());
    }

    #[test]
    fn the_query_string_repeats_the_filters() {
        let query = HistoryQuery {
            filter: Filter {
                actor: Some("alice@example.com".into()),
                action: Some("route.".into()),
                ..Filter::default()
            },
            before: Some(10),
            ..HistoryQuery::default()
        };
        assert_eq!(query.query_string(), "actor=alice%40example.com&action=route.");
    }
}
