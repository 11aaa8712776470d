//! What the overview keeps between views: the services derived from the watch caches, and
//! the services partial as last rendered from them.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;

use crate::change::canary;
use crate::change::routes::{LiveRouting, NamespaceRouting};
use crate::cluster::NamespaceCache;
use crate::gateway_api::HTTPRoute;
use crate::inventory;
use crate::istio::{DestinationRule, VirtualService};
use crate::pictures::graph::{Routing, ServiceInput};
use crate::pictures::observed::Observed;
use crate::policy;
use crate::policy::canary::Canary;

use super::{ServiceFacts, ServiceRow};
use crate::web::links::Links;

/// The [`ServiceFacts`] of each managed namespace, kept with the revision of the watch
/// caches they were derived from: the same revision means the same objects, so nothing to
/// invalidate, and a view right after a change sees it (BENCHMARKS.md, issue 15 §3: deriving
/// them took half of the overview's CPU at 150 Deployments, and comparing the cached objects
/// one by one still a tenth).
#[derive(Default)]
pub struct ServiceFactsMemo {
    namespaces: Mutex<HashMap<String, Arc<Derived>>>,
}

struct Derived {
    revision: u64,
    facts: Arc<[Arc<ServiceFacts>]>,
}

/// The cached objects the facts are derived from.
struct Snapshot {
    deployments: Vec<Arc<Deployment>>,
    services: Vec<Arc<Service>>,
    virtual_services: Vec<Arc<VirtualService>>,
    destination_rules: Vec<Arc<DestinationRule>>,
    http_routes: Vec<Arc<HTTPRoute>>,
}

impl Snapshot {
    fn of(cache: &NamespaceCache) -> Self {
        Snapshot {
            deployments: cache.deployments.state(),
            services: cache.services.state(),
            virtual_services: cache.virtual_services.state(),
            destination_rules: cache.destination_rules.state(),
            http_routes: cache.http_routes.state(),
        }
    }
}

impl ServiceFactsMemo {
    /// Every service of `namespace`, sorted by app.
    pub(super) fn of(&self, links: &Links, cache: &NamespaceCache, namespace: &str) -> Arc<[Arc<ServiceFacts>]> {
        // Read before the objects: a change in between moves it again, so the facts kept
        // under this revision are never older than it.
        let revision = cache.revision();
        let kept = self.namespaces.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(namespace).cloned();
        if let Some(kept) = kept.filter(|kept| kept.revision == revision) {
            return kept.facts.clone();
        }
        let now = Snapshot::of(cache);
        let facts: Arc<[Arc<ServiceFacts>]> = inventory::services(&now.deployments, &now.services)
            .into_iter()
            .map(|service| {
                let (routing, summary, canary) = routing_of(&now, namespace, &service.app);
                Arc::new(ServiceFacts {
                    kiali: links.kiali_service(namespace, &service.app),
                    jaeger: links.jaeger_traces(namespace, &service.app),
                    has_service: service.has_service,
                    service: ServiceInput { app: service.app, versions: service.versions, routing, summary, canary },
                })
            })
            .collect();
        let derived = Arc::new(Derived { revision, facts: facts.clone() });
        self.namespaces.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(namespace.to_owned(), derived);
        facts
    }
}

/// The services partial (graph and table) of each managed namespace as last rendered, with
/// the rows and the observed rates it was rendered from. Rendering 150 Deployments' table
/// cost more than a fifth of the overview's CPU (BENCHMARKS.md, issue 15 §3), and the page
/// is polled every second while the namespace rarely changes. Rows are compared by the
/// identity of their kept facts and by value of the rest, the rates by value: so any change,
/// or another actor's view scope, renders afresh.
#[derive(Default)]
pub struct RenderedServices {
    namespaces: Mutex<HashMap<String, Arc<Rendered>>>,
}

struct Rendered {
    rows: Vec<ServiceRow>,
    observed: Option<Observed>,
    html: Arc<str>,
}

impl Rendered {
    fn shows(&self, rows: &[ServiceRow], observed: Option<&Observed>) -> bool {
        self.observed.as_ref() == observed
            && self.rows.len() == rows.len()
            && self
                .rows
                .iter()
                .zip(rows)
                .all(|(kept, row)| Arc::ptr_eq(&kept.facts, &row.facts) && kept.changed_outside == row.changed_outside)
    }
}

impl RenderedServices {
    /// The partial of `rows` and `observed` in `namespace`: the kept one, else `render`'s
    /// (kept).
    pub fn html<E>(
        &self,
        namespace: &str,
        rows: Vec<ServiceRow>,
        observed: Option<Observed>,
        render: impl FnOnce(&[ServiceRow], Option<&Observed>) -> Result<String, E>,
    ) -> Result<Arc<str>, E> {
        let kept = self.namespaces.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).get(namespace).cloned();
        if let Some(kept) = kept.filter(|kept| kept.shows(&rows, observed.as_ref())) {
            return Ok(kept.html.clone());
        }
        let html: Arc<str> = render(&rows, observed.as_ref())?.into();
        let rendered = Arc::new(Rendered { rows, observed, html: html.clone() });
        self.namespaces.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(namespace.to_owned(), rendered);
        Ok(html)
    }
}

/// How traffic to `host` is routed: the policy for the graph, one line of words, and the
/// canary its routing records.
fn routing_of(objects: &Snapshot, namespace: &str, host: &str) -> (Routing, String, Option<Canary>) {
    let objects = NamespaceRouting {
        virtual_services: objects.virtual_services.iter().map(AsRef::as_ref).collect(),
        destination_rules: objects.destination_rules.iter().map(AsRef::as_ref).collect(),
        http_routes: objects.http_routes.iter().map(AsRef::as_ref).collect(),
        services: objects.services.iter().map(AsRef::as_ref).collect(),
    };
    let live = LiveRouting::lookup(namespace, host, objects);
    let canary = canary::current(&live);
    let (routing, words) = routing_and_words(&live, host);
    (routing, words, canary)
}

fn routing_and_words(live: &LiveRouting, host: &str) -> (Routing, String) {
    if let Some(ambiguous) = &live.ambiguous {
        let objects = &ambiguous.objects;
        if !objects.virtual_services.is_empty() && !objects.http_routes.is_empty() {
            let warning =
                format!("warning: routed by both {}; Istio leaves the behaviour undefined", objects.describe());
            return (Routing::Unknown, warning);
        }
        return (Routing::Unknown, format!("routed by {} (shown, not edited here)", objects.describe()));
    }
    if !live.exists() {
        return (Routing::None, "no routing policy: round-robin over all pods".to_owned());
    }
    match live.policy(host) {
        Ok(policy) => {
            let words = policy::summary(&policy);
            (Routing::Policy(policy), words)
        }
        Err(error) => (Routing::Unknown, format!("routing policy not understood: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(app: &str, changed_outside: bool) -> ServiceRow {
        let service = ServiceInput {
            app: app.into(),
            versions: Vec::new(),
            routing: Routing::None,
            summary: String::new(),
            canary: None,
        };
        ServiceRow {
            facts: Arc::new(ServiceFacts { service, has_service: true, kiali: None, jaeger: None }),
            changed_outside,
        }
    }

    /// Renders `rows` through `memo`, counting renders.
    fn html(memo: &RenderedServices, rows: &[ServiceRow], observed: Option<Observed>, renders: &mut u32) -> Arc<str> {
        let render = |rows: &[ServiceRow], _: Option<&Observed>| {
            *renders += 1;
            Ok::<_, ()>(rows.iter().map(|r| format!("{}:{} ", r.facts.service.app, r.changed_outside)).collect())
        };
        memo.html("ns", rows.to_vec(), observed, render).unwrap()
    }

    #[test]
    fn the_same_rows_reuse_the_rendered_partial_and_any_difference_renders_again() {
        let memo = RenderedServices::default();
        let rows = vec![row("a", false), row("b", false)];
        let mut renders = 0;
        let first = html(&memo, &rows, None, &mut renders);
        assert!(Arc::ptr_eq(&first, &html(&memo, &rows, None, &mut renders)), "kept");
        assert_eq!(renders, 1);

        let mut badge = rows.clone();
        badge[1].changed_outside = true;
        assert_eq!(&*html(&memo, &badge, None, &mut renders), "a:false b:true ");
        let rederived = vec![row("a", false), rows[1].clone()];
        html(&memo, &rederived, None, &mut renders);
        assert_eq!(renders, 3, "new facts (another revision of the caches) render again, even if equal");
        html(&memo, &rederived[..1], None, &mut renders);
        assert_eq!(renders, 4, "a narrower view scope renders again");
        html(&memo, &rederived[..1], Some(Observed::default()), &mut renders);
        assert_eq!(renders, 5, "observed rates render again");
    }
}
