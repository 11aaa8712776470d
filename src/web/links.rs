//! Links to Kiali, Jaeger and the ingress gateway, built from their base URLs, and whether
//! anything answers there: a link to nothing is marked, not offered as if it worked.
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, Weak};
use std::time::Duration;

use jiff::Timestamp;

/// How long a probe waits for an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the last probe of a base URL found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// Not probed yet, or not probeable from here (https: signalbox's client speaks plain
    /// http only): offered as configured.
    Unknown,
    /// Something answered with any HTTP status.
    Answers,
    /// Nothing answered within the timeout.
    Silent,
}

/// One tool's base URL and what was last found there.
#[derive(Debug)]
struct Tool {
    base: String,
    answer: AtomicU8,
}

impl Tool {
    fn new(base: String) -> Tool {
        Tool { base, answer: AtomicU8::new(Answer::Unknown as u8) }
    }

    fn answer(&self) -> Answer {
        match self.answer.load(Ordering::Relaxed) {
            1 => Answer::Answers,
            2 => Answer::Silent,
            _ => Answer::Unknown,
        }
    }

    fn set(&self, answer: Answer) {
        self.answer.store(answer as u8, Ordering::Relaxed);
    }
}

#[derive(Debug, Default)]
pub struct Links {
    kiali: Option<Tool>,
    jaeger: Option<Tool>,
    /// The ingress gateway's address, once a page showed it (it comes from the cluster).
    ingress: Mutex<Option<std::sync::Arc<Tool>>>,
    /// Wakes the prober early for a new ingress address.
    wake: tokio::sync::Notify,
}

impl Links {
    pub fn new(kiali: Option<String>, jaeger: Option<String>) -> Self {
        let trim = |url: Option<String>| url.map(|u| u.trim_end_matches('/').to_owned()).filter(|u| !u.is_empty());
        let (kiali, jaeger) = (trim(kiali).map(Tool::new), trim(jaeger).map(Tool::new));
        Self { kiali, jaeger, ingress: Mutex::default(), wake: tokio::sync::Notify::new() }
    }

    /// Kiali's traffic graph of a namespace.
    pub fn kiali_graph(&self, namespace: &str) -> Option<String> {
        let base = &self.kiali.as_ref()?.base;
        Some(format!("{base}/console/graph/namespaces/?namespaces={}", encode(namespace)))
    }

    /// Kiali's page of one service.
    pub fn kiali_service(&self, namespace: &str, service: &str) -> Option<String> {
        let base = &self.kiali.as_ref()?.base;
        Some(format!("{base}/console/namespaces/{}/services/{}", encode(namespace), encode(service)))
    }

    /// Jaeger's trace search for a service (Istio names it `service.namespace`).
    pub fn jaeger_traces(&self, namespace: &str, service: &str) -> Option<String> {
        let base = &self.jaeger.as_ref()?.base;
        Some(format!("{base}/search?service={}.{}", encode(service), encode(namespace)))
    }

    /// Jaeger's traces of a service in a time window (microseconds, as Jaeger expects).
    pub fn jaeger_traces_between(
        &self,
        namespace: &str,
        service: &str,
        start: Timestamp,
        end: Timestamp,
    ) -> Option<String> {
        let search = self.jaeger_traces(namespace, service)?;
        Some(format!("{search}&start={}&end={}", start.as_microsecond(), end.as_microsecond()))
    }

    pub fn has_kiali(&self) -> bool {
        self.kiali.is_some()
    }

    pub fn has_jaeger(&self) -> bool {
        self.jaeger.is_some()
    }

    /// The configured tools nothing answered at when last probed: `("Kiali", base URL)`.
    /// Every page marks their links (the `kiali-silent` / `jaeger-silent` body classes), so
    /// links kept in rendered partials need no re-rendering when a tool comes or goes.
    pub fn silent(&self) -> Vec<(&'static str, &str)> {
        let tools = [("Kiali", &self.kiali), ("Jaeger", &self.jaeger)];
        let silent = tools.into_iter().filter_map(|(name, tool)| Some((name, tool.as_ref()?)));
        silent
            .filter(|(_, tool)| tool.answer() == Answer::Silent)
            .map(|(name, tool)| (name, tool.base.as_str()))
            .collect()
    }

    /// What was last found at the ingress gateway's `url`; a new address is probed from now on.
    pub fn ingress_answer(&self, url: &str) -> Answer {
        let mut ingress = self.ingress.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match ingress.as_ref() {
            Some(tool) if tool.base == url => tool.answer(),
            _ => {
                *ingress = Some(std::sync::Arc::new(Tool::new(url.to_owned())));
                self.wake.notify_one();
                Answer::Unknown
            }
        }
    }

    /// Probes every base URL now and then every `every`, until the links are dropped.
    pub fn spawn_probes(links: &std::sync::Arc<Links>, every: Duration) -> tokio::task::JoinHandle<()> {
        let links: Weak<Links> = std::sync::Arc::downgrade(links);
        tokio::spawn(async move {
            // Any answer counts: a redirect (to a login, say) is not followed.
            let client = reqwest::Client::builder().timeout(PROBE_TIMEOUT).redirect(reqwest::redirect::Policy::none());
            let Ok(client) = client.build() else {
                return;
            };
            loop {
                let Some(links) = links.upgrade() else {
                    return;
                };
                links.probe(&client).await;
                // Held while waiting: the links outlive a stopped console by one wait at most.
                let _ = tokio::time::timeout(every, links.wake.notified()).await;
            }
        })
    }

    async fn probe(&self, client: &reqwest::Client) {
        let ingress = self.ingress.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
        let tools = [self.kiali.as_ref(), self.jaeger.as_ref(), ingress.as_deref()];
        for tool in tools.into_iter().flatten() {
            tool.set(answer_at(client, &tool.base).await);
        }
    }
}

/// Whether anything answers HTTP at `base`: any status counts (Kiali behind a login
/// answers 302 or 401).
async fn answer_at(client: &reqwest::Client, base: &str) -> Answer {
    if !base.starts_with("http://") {
        return Answer::Unknown;
    }
    match client.get(base).send().await {
        Ok(_) => Answer::Answers,
        Err(_) => Answer::Silent,
    }
}

fn encode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_follow_kiali_and_jaeger_url_schemes() {
        let links = Links::new(Some("http://kiali:20001/kiali/".into()), Some("http://tracing/jaeger".into()));
        assert_eq!(
            links.kiali_graph("tutorial").unwrap(),
            "http://kiali:20001/kiali/console/graph/namespaces/?namespaces=tutorial"
        );
        assert_eq!(
            links.kiali_service("tutorial", "recommendation").unwrap(),
            "http://kiali:20001/kiali/console/namespaces/tutorial/services/recommendation"
        );
        assert_eq!(
            links.jaeger_traces("tutorial", "customer").unwrap(),
            "http://tracing/jaeger/search?service=customer.tutorial"
        );
        let start = Timestamp::from_second(1_700_000_000).unwrap();
        let end = Timestamp::from_second(1_700_000_600).unwrap();
        assert!(
            links
                .jaeger_traces_between("tutorial", "customer", start, end)
                .unwrap()
                .ends_with("&start=1700000000000000&end=1700000600000000")
        );
    }

    #[tokio::test]
    async fn a_tool_is_silent_when_nothing_answers_and_answers_with_any_status() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let answering = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut request = [0u8; 1024];
                let _ = socket.read(&mut request).await;
                let _ = socket.write_all(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n").await;
            }
        });
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent = format!("http://{}/kiali", closed.local_addr().unwrap());
        drop(closed);
        let links = Links::new(Some(silent.clone()), Some(answering.clone()));
        assert!(links.silent().is_empty(), "nothing is silent before a probe");
        assert_eq!(links.ingress_answer("https://ingress.example"), Answer::Unknown);
        let client = reqwest::Client::builder().timeout(PROBE_TIMEOUT).build().unwrap();
        links.probe(&client).await;
        assert_eq!(links.silent(), [("Kiali", silent.as_str())]);
        assert_eq!(links.jaeger.as_ref().unwrap().answer(), Answer::Answers, "a 401 is an answer");
        assert_eq!(links.ingress_answer("https://ingress.example"), Answer::Unknown, "https is not probed");
        assert!(links.kiali_graph("t").is_some(), "a silent tool's links stay, marked by the page");
    }

    #[test]
    fn unset_urls_give_no_links() {
        let links = Links::new(None, Some(String::new()));
        assert!(links.kiali_graph("tutorial").is_none());
        assert!(links.jaeger_traces("tutorial", "customer").is_none());
    }
}
