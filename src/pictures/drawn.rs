//! The service graph as SVG, drawn once per distinct picture and reused.
//!
//! Laying out and drawing the graph of 150 Deployments took about half of the overview's
//! CPU (BENCHMARKS.md, issue 15 §3), and the overview is viewed — and polled every second —
//! far more often than the watch caches or the observed rates change. The graph is a pure
//! function of the namespace, the services the actor may view (with their versions and
//! routing) and the observed rates, so [`DrawnGraphs`] keeps the last few drawings keyed by
//! exactly those inputs, compared by value: a view of an unchanged namespace reuses the
//! SVG, and any change (a Deployment's ready count, a weight, a rate, a different actor's
//! view scope) draws it afresh. No invalidation to get wrong, and nothing actor-dependent
//! beyond what the picture shows.
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use askama::Template;

use super::graph::{self, ServiceGraph, ServiceInput};
use super::observed::Observed;

/// Drawings kept: a namespace or two as seen by a few view scopes, a few hundred KB at most.
const KEPT: usize = 16;

#[derive(Template)]
#[template(path = "partials/service_graph.html")]
struct GraphPicture<'a> {
    graph: &'a ServiceGraph,
}

/// Lays out and draws the graph: what [`DrawnGraphs::svg`] does when it has no drawing.
pub fn draw(namespace: &str, services: &[ServiceInput], observed: Option<&Observed>) -> Result<String, askama::Error> {
    GraphPicture { graph: &graph::graph(namespace, services, observed) }.render()
}

struct Drawing {
    namespace: String,
    services: Vec<ServiceInput>,
    observed: Option<Observed>,
    svg: Arc<str>,
}

impl Drawing {
    fn shows(&self, namespace: &str, services: &[&ServiceInput], observed: Option<&Observed>) -> bool {
        self.namespace == namespace
            && self.observed.as_ref() == observed
            && self.services.len() == services.len()
            && self.services.iter().zip(services).all(|(kept, service)| kept == *service)
    }
}

/// The last [`KEPT`] drawings, the most recently used first.
#[derive(Default)]
pub struct DrawnGraphs {
    drawings: Mutex<VecDeque<Drawing>>,
}

impl DrawnGraphs {
    /// The SVG of the graph of `services` in `namespace`: the kept drawing of the same
    /// inputs, else a new one (kept).
    pub fn svg(
        &self,
        namespace: &str,
        services: &[&ServiceInput],
        observed: Option<&Observed>,
    ) -> Result<Arc<str>, askama::Error> {
        {
            let mut drawings = self.drawings.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if let Some(index) = drawings.iter().position(|d| d.shows(namespace, services, observed)) {
                let drawing = drawings.remove(index).expect("found above");
                let svg = drawing.svg.clone();
                drawings.push_front(drawing);
                return Ok(svg);
            }
        }
        // Drawn without the lock: concurrent views of a new state may each draw it once.
        let services: Vec<ServiceInput> = services.iter().map(|service| (*service).clone()).collect();
        let svg: Arc<str> = draw(namespace, &services, observed)?.into();
        let drawing =
            Drawing { namespace: namespace.to_owned(), services, observed: observed.cloned(), svg: svg.clone() };
        let mut drawings = self.drawings.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        drawings.push_front(drawing);
        drawings.truncate(KEPT);
        Ok(svg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::VersionSummary;
    use crate::pictures::graph::Routing;

    fn service(app: &str, ready: i32) -> ServiceInput {
        let version = VersionSummary {
            name: format!("{app}-v1"),
            deployment: format!("{app}-v1"),
            app: app.into(),
            version: "v1".into(),
            desired: 1,
            ready,
        };
        ServiceInput {
            app: app.into(),
            versions: vec![version],
            routing: Routing::None,
            summary: "none".into(),
            canary: None,
        }
    }

    #[test]
    fn reuses_a_drawing_only_for_the_same_inputs() {
        let drawn = DrawnGraphs::default();
        let (customer, preference) = (service("customer", 1), service("preference", 1));
        let first = drawn.svg("ns", &[&customer, &preference], None).unwrap();
        assert_eq!(*first, draw("ns", &[customer.clone(), preference.clone()], None).unwrap());
        let again = drawn.svg("ns", &[&customer, &preference], None).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "the same inputs draw nothing new");

        let not_ready = service("preference", 0);
        let changed = drawn.svg("ns", &[&customer, &not_ready], None).unwrap();
        assert!(!Arc::ptr_eq(&first, &changed));
        assert!(changed.contains("0/1"), "{changed}");
        let fewer = drawn.svg("ns", &[&customer], None).unwrap();
        assert!(!fewer.contains("node-preference"), "another view scope, another drawing");
        let elsewhere = drawn.svg("other", &[&customer, &preference], None).unwrap();
        assert!(elsewhere.contains("/ns/other/routes/customer"));
        let observed = Observed::default();
        let with_rates = drawn.svg("ns", &[&customer, &preference], Some(&observed)).unwrap();
        assert!(!Arc::ptr_eq(&first, &with_rates));
        // The first inputs again: still kept.
        assert!(Arc::ptr_eq(&first, &drawn.svg("ns", &[&customer, &preference], None).unwrap()));
    }
}
