//! Export formats: one CSV row or one NDJSON line per entry, written batch by batch so an
//! export of any size streams in bounded memory.
use super::Entry;

/// The CSV columns, in order.
pub const CSV_HEADER: &str =
    "id,time,actor,groups,source,action,namespace,kind,name,summary,outcome,error,request_id,reverts,before,after\r\n";

/// Appends one entry as a CSV row (RFC 4180: CRLF line ends, fields quoted when needed).
pub fn push_csv_row(out: &mut String, entry: &Entry) {
    let document = |doc: &Option<serde_json::Value>| doc.as_ref().map(|d| d.to_string()).unwrap_or_default();
    let fields = [
        entry.id.to_string(),
        entry.time(),
        entry.actor.clone(),
        entry.groups.join(" "),
        entry.source.to_string(),
        entry.action.clone(),
        entry.namespace.clone(),
        entry.kind.clone(),
        entry.name.clone(),
        entry.summary.clone(),
        entry.outcome.to_string(),
        entry.error.clone().unwrap_or_default(),
        entry.request_id.clone().unwrap_or_default(),
        entry.reverts.map(|id| id.to_string()).unwrap_or_default(),
        document(&entry.before),
        document(&entry.after),
    ];
    for (index, field) in fields.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        push_csv_field(out, field);
    }
    out.push_str("\r\n");
}

/// Appends one entry as a JSON line, the same object as `GET /api/v1/audit/{id}`.
pub fn push_ndjson_line(out: &mut String, entry: &Entry) {
    out.push_str(&serde_json::to_string(entry).unwrap_or_default());
    out.push('\n');
}

/// Quotes a field when it holds a separator, a quote or a line break. A field a
/// spreadsheet would run as a formula (leading `=`, `+`, `-`, `@`, tab or CR; actors,
/// summaries and errors can come from outside) gets a leading `'`, as OWASP advises.
fn push_csv_field(out: &mut String, field: &str) {
    let formula = field.starts_with(['=', '+', '-', '@', '\t', '\r']);
    let quote = formula || field.contains([',', '"', '\n', '\r']);
    if quote {
        out.push('"');
    }
    if formula {
        out.push('\'');
    }
    out.push_str(&field.replace('"', "\"\""));
    if quote {
        out.push('"');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_only_when_needed_and_formulas_are_defused() {
        let field = |text: &str| {
            let mut out = String::new();
            push_csv_field(&mut out, text);
            out
        };
        assert_eq!(field("plain"), "plain");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
        assert_eq!(field("=HYPERLINK(\"x\")"), "\"'=HYPERLINK(\"\"x\"\")\"");
        assert_eq!(field(""), "");
    }
}
