//! Links to Kiali and Jaeger, built from their base URLs.
use jiff::Timestamp;

#[derive(Debug, Clone, Default)]
pub struct Links {
    kiali: Option<String>,
    jaeger: Option<String>,
}

impl Links {
    pub fn new(kiali: Option<String>, jaeger: Option<String>) -> Self {
        let trim = |url: Option<String>| url.map(|u| u.trim_end_matches('/').to_owned()).filter(|u| !u.is_empty());
        Self { kiali: trim(kiali), jaeger: trim(jaeger) }
    }

    /// Kiali's traffic graph of a namespace.
    pub fn kiali_graph(&self, namespace: &str) -> Option<String> {
        let base = self.kiali.as_ref()?;
        Some(format!("{base}/console/graph/namespaces/?namespaces={}", encode(namespace)))
    }

    /// Kiali's page of one service.
    pub fn kiali_service(&self, namespace: &str, service: &str) -> Option<String> {
        let base = self.kiali.as_ref()?;
        Some(format!("{base}/console/namespaces/{}/services/{}", encode(namespace), encode(service)))
    }

    /// Jaeger's trace search for a service (Istio names it `service.namespace`).
    pub fn jaeger_traces(&self, namespace: &str, service: &str) -> Option<String> {
        let base = self.jaeger.as_ref()?;
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

    #[test]
    fn unset_urls_give_no_links() {
        let links = Links::new(None, Some(String::new()));
        assert!(links.kiali_graph("tutorial").is_none());
        assert!(links.jaeger_traces("tutorial", "customer").is_none());
    }
}
