//! A real headless Chromium driven through chromedriver (WebDriver), one per test.
//!
//! Each `Browser` starts its own chromedriver on a free loopback port with a fresh profile
//! directory, and shuts both down when closed or dropped (also when the test panics), so no
//! chromedriver or Chromium process outlives the test.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

/// `url::ParseError`, named through reqwest's re-export of `url::Url` (no extra dependency).
type ParseError = <reqwest::Url as std::str::FromStr>::Err;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";
const DRIVER_STARTS_WITHIN: Duration = Duration::from_secs(20);

pub struct Browser {
    pub client: Client,
    driver: Child,
    port: u16,
    _profile: tempfile::TempDir,
    _driver_log: tempfile::NamedTempFile,
}

/// A minimal blocking HTTP/1.1 GET on loopback: usable in `Drop`, where nothing can be awaited.
fn loopback_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n").ok()?;
    // chromedriver announces `Connection: close` but may keep the socket open: read exactly
    // the headers and Content-Length bytes instead of waiting for the end of the stream.
    let mut response = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        let read = stream.read(&mut buffer).ok()?;
        response.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&response);
        if let Some(end_of_headers) = text.find("\r\n\r\n") {
            let length = text[..end_of_headers].lines().find_map(|line| {
                line.to_ascii_lowercase().strip_prefix("content-length:")?.trim().parse::<usize>().ok()
            });
            if read == 0 || length.is_some_and(|length| response.len() >= end_of_headers + 4 + length) {
                return Some(text.into_owned());
            }
        } else if read == 0 {
            return None;
        }
    }
}

/// One line of the browser's console (JavaScript errors, CSP violations, failed loads).
#[derive(Debug, Clone)]
pub struct ConsoleEntry {
    pub level: String,
    pub message: String,
}

/// chromedriver's log endpoint (not part of W3C WebDriver, so fantoccini has no method for it).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base: &reqwest::Url, session: Option<&str>) -> Result<reqwest::Url, ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &reqwest::Url) -> (axum::http::Method, Option<String>) {
        (axum::http::Method::POST, Some(r#"{"type":"browser"}"#.into()))
    }
}

impl Browser {
    /// Starts chromedriver on a free loopback port and a headless Chromium session; fails the
    /// test with chromedriver's own output when either cannot start.
    pub async fn start() -> Self {
        for binary in [CHROMEDRIVER, CHROMIUM] {
            assert!(
                std::path::Path::new(binary).exists(),
                "{binary} is missing: install the Debian packages chromium and chromium-driver"
            );
        }
        let port = super::free_port();
        let driver_log = tempfile::NamedTempFile::new().unwrap();
        let mut driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(driver_log.reopen().unwrap())
            .stderr(driver_log.reopen().unwrap())
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {CHROMEDRIVER}: {e}"));
        let log = |driver_log: &tempfile::NamedTempFile| std::fs::read_to_string(driver_log.path()).unwrap_or_default();

        let started = Instant::now();
        while loopback_get(port, "/status").is_none_or(|status| !status.contains("\"ready\":true")) {
            if let Ok(Some(exit)) = driver.try_wait() {
                panic!("chromedriver exited ({exit}) before answering:\n{}", log(&driver_log));
            }
            if started.elapsed() > DRIVER_STARTS_WITHIN {
                let _ = driver.kill();
                let _ = driver.wait();
                panic!(
                    "chromedriver did not answer on port {port} within {DRIVER_STARTS_WITHIN:?}:\n{}",
                    log(&driver_log)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }

        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--window-size=1280,900".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = serde_json::json!({
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        });
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities.as_object().unwrap().clone());
        let client = match builder.connect(&format!("http://127.0.0.1:{port}")).await {
            Ok(client) => client,
            Err(error) => {
                let _ = driver.kill();
                let _ = driver.wait();
                panic!("chromedriver could not start Chromium: {error}\n{}", log(&driver_log));
            }
        };
        Self { client, driver, port, _profile: profile, _driver_log: driver_log }
    }

    pub async fn goto(&self, url: &str) {
        self.client.goto(url).await.unwrap_or_else(|e| panic!("navigate to {url}: {e}"));
    }

    /// Saves a PNG of the page to target/screenshots/<name>.png.
    pub async fn screenshot(&self, name: &str) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let png = self.client.screenshot().await.expect("screenshot");
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    pub async fn text(&self, css: &str) -> String {
        self.client.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("{css}: {e}")).text().await.unwrap()
    }

    /// Waits until the element's text contains `expected` (polling; the page updates itself).
    /// A timeout names what the element last showed, so a failure says where it stood.
    pub async fn wait_for_text(&self, css: &str, expected: &str, timeout: Duration) -> String {
        self.try_wait_for_text(css, expected, timeout).await.unwrap_or_else(|timed_out| panic!("{timed_out}"))
    }

    /// [`Self::wait_for_text`] for callers that add what they know to a timeout.
    pub async fn try_wait_for_text(&self, css: &str, expected: &str, timeout: Duration) -> Result<String, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut last_seen = String::from("(no such element)");
        loop {
            if let Ok(element) = self.client.find(Locator::Css(css)).await
                && let Ok(text) = element.text().await
            {
                if text.contains(expected) {
                    return Ok(text);
                }
                last_seen = text;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "timed out after {timeout:?} waiting for {css} to show {expected:?}; it showed {last_seen:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn click(&self, css: &str) {
        let element = self.client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css(css)).await;
        element.unwrap_or_else(|e| panic!("{css}: {e}")).click().await.unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Types `value` into the field, waiting (like [`Self::click`]) for it to be there: htmx
    /// swaps the rows that hold fields while it polls, so a field found an instant earlier
    /// may be replaced before it is typed into; that is tried again with the new one.
    pub async fn fill(&self, css: &str, value: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let element = self.client.wait().at_most(Duration::from_secs(10)).for_element(Locator::Css(css)).await;
            let element = element.unwrap_or_else(|e| panic!("{css}: {e}"));
            let typed = match element.clear().await {
                Ok(()) => element.send_keys(value).await,
                Err(error) => Err(error),
            };
            match typed {
                Ok(()) => return,
                Err(error) if tokio::time::Instant::now() >= deadline => panic!("fill {css}: {error}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// The URL the page is at now (to prove htmx updated it in place).
    pub async fn url(&self) -> String {
        self.client.current_url().await.unwrap().to_string()
    }

    /// Whether a JavaScript dialog (alert) is open.
    pub async fn has_dialog(&self) -> bool {
        self.client.get_alert_text().await.is_ok()
    }

    /// The console entries logged since the last call (chromedriver hands each out once).
    pub async fn console_entries(&self) -> Vec<ConsoleEntry> {
        let log = self.client.issue_cmd(BrowserLog).await.expect("browser log");
        log.as_array()
            .into_iter()
            .flatten()
            .map(|entry| ConsoleEntry {
                level: entry["level"].as_str().unwrap_or_default().to_owned(),
                message: entry["message"].as_str().unwrap_or_default().to_owned(),
            })
            .collect()
    }

    /// Errors in the browser console since the last call: script errors, CSP violations,
    /// resources that failed to load.
    pub async fn console_errors(&self) -> Vec<String> {
        self.console_entries().await.into_iter().filter(|e| e.level == "SEVERE").map(|e| e.message).collect()
    }

    /// Ends the session (Chromium quits) and stops chromedriver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
        // Drop shuts chromedriver down.
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver's /shutdown quits every Chromium it started and then exits itself; a
        // plain kill would leave Chromium running when a test panics mid-session.
        let _ = loopback_get(self.port, "/shutdown");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.driver.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
