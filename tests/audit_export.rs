//! `GET /api/v1/audit/export` streams 200,000 entries as CSV and NDJSON without holding
//! the export in memory.
mod support;

#[path = "support/bulk_audit.rs"]
mod bulk_audit;

use std::time::Instant;

use reqwest::StatusCode;
use support::TestNamespace;
use support::console::Console;

const ENTRIES: i64 = 200_000;

/// One test at a time measures this process's memory: both tests' consoles run in it.
static MEASURING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Resident memory of this process (the console runs in it), in bytes.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches(" kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// What reading an export chunk by chunk saw.
struct Streamed {
    headers: reqwest::header::HeaderMap,
    lines: u64,
    bytes: u64,
    /// The largest RSS growth while reading.
    growth: u64,
    first_chunk: std::time::Duration,
    total: std::time::Duration,
}

async fn stream(console: &Console, query: &str) -> Streamed {
    let started = Instant::now();
    let response = console.http.get(console.url(&format!("/api/v1/audit/export?{query}"))).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    let baseline = rss_bytes();
    let (mut lines, mut bytes, mut growth, mut first_chunk) = (0, 0, 0, None);
    let mut response = response;
    while let Some(chunk) = response.chunk().await.unwrap() {
        first_chunk.get_or_insert(started.elapsed());
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
        growth = growth.max(rss_bytes().saturating_sub(baseline));
    }
    Streamed { headers, lines, bytes, growth, first_chunk: first_chunk.unwrap_or_default(), total: started.elapsed() }
}

#[tokio::test]
async fn exports_stream_200k_entries_in_bounded_memory() {
    let ns = TestNamespace::new("export").await;
    let console = Console::start(&ns.name).await;
    bulk_audit::insert_entries(&console.database, ENTRIES).await;
    let _measuring = MEASURING.lock().await;

    let csv = stream(&console, "format=csv").await;
    assert_eq!(csv.headers["content-type"], "text/csv; charset=utf-8");
    assert!(csv.headers.get("content-length").is_none(), "streamed, not sized up front: {:?}", csv.headers);
    assert_eq!(csv.lines, ENTRIES as u64 + 1, "a header and one row per entry");
    println!(
        "CSV: {ENTRIES} entries, {} bytes in {:?}, first chunk after {:?}, RSS growth {} bytes",
        csv.bytes, csv.total, csv.first_chunk, csv.growth
    );
    assert!(csv.first_chunk * 10 < csv.total, "rows arrive while later ones are still being read");
    // Holding the export would take at least its size; batches, SQLite's page cache and the
    // allocator's retained pages stay well below it.
    assert!(csv.growth < csv.bytes * 3 / 4, "memory grew by {} bytes while streaming {}", csv.growth, csv.bytes);

    let ndjson = stream(&console, "format=ndjson&actor=user-3&outcome=applied").await;
    assert_eq!(ndjson.headers["content-type"], "application/x-ndjson");
    assert_eq!(ndjson.lines, 20_000, "user-3's entries (ids ending in 3), none of them failed or denied");

    let (status, problem) = console.get_json(&console.url("/api/v1/audit/export?format=xml")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    let (status, problem) = console.get_json(&console.url("/api/v1/audit/export")).await;
    assert_eq!((status, problem["field"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("format")));
    console.stop().await;
}

#[tokio::test]
async fn an_export_of_200_kib_entries_streams_in_bounded_memory() {
    const LARGE: i64 = 600;
    let ns = TestNamespace::new("export-large").await;
    let console = Console::start(&ns.name).await;
    bulk_audit::insert_entries_with_documents(&console.database, LARGE, 200 * 1024).await;
    let _measuring = MEASURING.lock().await;

    let ndjson = stream(&console, "format=ndjson").await;
    assert_eq!(ndjson.lines, LARGE as u64);
    assert!(ndjson.bytes > (LARGE * 200 * 1024) as u64, "{} bytes", ndjson.bytes);
    println!(
        "NDJSON: {LARGE} entries of 200 KiB, {} bytes in {:?}, RSS growth {} bytes",
        ndjson.bytes, ndjson.total, ndjson.growth
    );
    // Read 1000 entries at a time, the whole 120 MB would be in memory at once, twice over
    // once parsed and written out; batches are bounded in bytes too.
    assert!(
        ndjson.growth < 64 * 1024 * 1024,
        "memory grew by {} bytes while streaming {}",
        ndjson.growth,
        ndjson.bytes
    );

    // The list API cuts a page of large entries short by size, and `next` leads on.
    let (mut listed, mut pages, mut url) = (0, 0, console.url("/api/v1/audit?limit=1000"));
    loop {
        let response = console.http.get(&url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let page: serde_json::Value = response.json().await.unwrap();
        let entries = page["entries"].as_array().unwrap().len();
        assert!(entries <= 64, "a page of {entries} entries of 200 KiB");
        (listed, pages) = (listed + entries, pages + 1);
        match page["next"].as_i64() {
            Some(before) => url = console.url(&format!("/api/v1/audit?limit=1000&before={before}")),
            None => break,
        }
    }
    assert_eq!(listed, LARGE as usize, "every entry once, in {pages} pages");
    console.stop().await;
}
