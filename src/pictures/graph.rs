//! The namespace's services as a graph: each service, its versions, the weights the live
//! routing gives each version, and the calls the tutorial's workloads make.
use crate::inventory::VersionSummary;
use crate::policy::canary::Canary;
use crate::policy::{self, ALL_PODS, RoutingPolicy};

use super::layout::{self, LINE_HEIGHT, Placed, Rect};
use super::marks::{Mark, subset_marks};
use super::observed::Observed;

/// Who calls whom: the tutorial's workloads call the next service by name. For other
/// services no call is known, so none is drawn.
pub const TUTORIAL_CALLS: [(&str, &str); 2] = [("customer", "preference"), ("preference", "recommendation")];
/// Longer labels are cut (with `…`) to fit between a service and its versions; the
/// edge's `<title>` and the graph's words keep them whole.
const LABEL_CHARS: usize = 23;
/// About how wide a character of an edge label is (11px sans-serif), in SVG units.
const CHAR_WIDTH: i32 = 6;
/// Starts an edge's observed-rate line.
const OBSERVED: &str = "observed";
/// A collapsed service lists this many versions beside its box; the words (and the
/// services table) name them all.
const LISTED_VERSIONS: usize = 4;
/// At most this many idle services (one box each, see [`fans_out`]) are drawn; past it the
/// first few are, and one box counts the rest, which the services table lists.
const IDLE_SERVICES_DRAWN: usize = 6;
/// The id of the services table on the overview, where the box of folded services links.
const SERVICE_TABLE: &str = "#service-table";

/// How a service's traffic is routed, as the overview found it.
#[derive(Debug, Clone, PartialEq)]
pub enum Routing {
    /// No VirtualService: Kubernetes spreads requests over all pods.
    None,
    Policy(RoutingPolicy),
    /// Several objects or a policy signalbox does not understand: the routing page explains.
    Unknown,
}

/// One service as the overview knows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceInput {
    pub app: String,
    pub versions: Vec<VersionSummary>,
    pub routing: Routing,
    /// The routing in words, as the services table says it.
    pub summary: String,
    /// The canary recorded on the routing, running or not.
    pub canary: Option<Canary>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServiceGraph {
    pub width: i32,
    pub height: i32,
    /// Everything the picture shows, in words (its `<title>`, which names it).
    pub words: String,
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
    /// The tutorial's calls are drawn (its caption then says where they come from).
    pub tutorial_calls: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub id: String,
    /// `service`, or `version state-ready` (the status colours of the table).
    pub class: String,
    pub rect: Rect,
    pub label: String,
    /// A version's ready count, `1/1`.
    pub detail: Option<String>,
    pub text_x: i32,
    pub text_y: i32,
    /// The box's tooltip; none on a service that lists its versions, which the caption
    /// explains and the words describe (fifty such boxes would repeat one sentence).
    pub title: Option<String>,
    /// A service links to its routing page.
    pub href: Option<String>,
    /// A collapsed service's versions, written beside its box instead of drawn as boxes.
    pub listed: Vec<ListedVersion>,
}

/// `v1 1/1`, coloured by its state (the table's status colours).
#[derive(Debug, Clone, PartialEq)]
pub struct ListedVersion {
    pub text: String,
    pub state: &'static str,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    pub id: String,
    /// `route`, `route unrouted`, `route unknown` or `call`.
    pub class: &'static str,
    /// SVG path data.
    pub path: String,
    pub labels: Vec<EdgeLabel>,
    pub title: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EdgeLabel {
    pub x: i32,
    pub y: i32,
    pub text: String,
    /// SVG `text-anchor`: `end` next to a version, `middle` over a call.
    pub anchor: &'static str,
    /// A mark's class (`mark-timeout`, ...), empty for weights and rates.
    pub class: &'static str,
}

/// The label lines of the edge to one version: what the routing sends it, the marks of
/// what reaches it, and the rate observed; and the edge's class.
#[derive(Debug, Clone, Default)]
struct EdgeLines {
    weights: Vec<String>,
    marks: Vec<Mark>,
    observed: Option<String>,
    class: &'static str,
}

impl EdgeLines {
    fn of(weights: Vec<String>, class: &'static str) -> EdgeLines {
        EdgeLines { weights, class, ..EdgeLines::default() }
    }

    /// Every line, top to bottom, with its class.
    fn lines(&self) -> Vec<(&str, &'static str)> {
        let weights = self.weights.iter().map(|w| (w.as_str(), ""));
        let marks = self.marks.iter().map(|m| (m.text.as_str(), m.class));
        weights.chain(marks).chain(self.observed.iter().map(|o| (o.as_str(), ""))).collect()
    }
}

/// The graph of `services` (sorted by app, as the inventory lists them) in `namespace`,
/// with the traffic Prometheus observed on each edge when there is a Prometheus.
pub fn graph(namespace: &str, services: &[ServiceInput], observed: Option<&Observed>) -> ServiceGraph {
    let calls = known_calls(services);
    let (layers, mut loose) = layers(services, &calls);
    let fanned: Vec<bool> =
        services.iter().enumerate().map(|(index, service)| fans_out(index, service, &calls, observed)).collect();
    let labels: Vec<Vec<EdgeLines>> = services
        .iter()
        .zip(&fanned)
        .map(|(service, &fanned)| if fanned { version_labels(service, observed) } else { Vec::new() })
        .collect();
    let folded = folded_idle_services(&fanned);
    let mut lines: Vec<Vec<usize>> = labels.iter().map(|v| v.iter().map(|l| l.lines().len()).collect()).collect();
    if !folded.is_empty() {
        // The box that counts them takes the place of the first, as one more loose service.
        loose.retain(|s| !folded.contains(s));
        loose.push(services.len());
        lines.push(Vec::new());
    }
    let placed = layout::place(&layers, &loose, &lines);
    // Services drawn as one box that lists their versions beside it.
    let listed: Vec<bool> = services.iter().zip(&labels).map(|(s, l)| l.is_empty() && !s.versions.is_empty()).collect();
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    for (index, ((service, labels), at)) in services.iter().zip(&labels).zip(&placed.placed).enumerate() {
        if folded.contains(&index) {
            continue;
        }
        let mut node = service_node(namespace, service, &at.service);
        if listed[index] {
            node.listed = listed_versions(service);
            node.title = None;
        }
        nodes.push(node);
        let straight = straight_run(labels);
        for ((version, lines), rect) in service.versions.iter().zip(labels).zip(&at.versions) {
            nodes.push(version_node(service, version, rect));
            edges.push(route_edge(service, version, lines, (&at.service, rect), straight));
        }
    }
    for &(caller, callee) in &calls {
        let (from, to) = (&placed.placed[caller], &placed.placed[callee]);
        edges.extend(call_edges(&services[caller], from, &services[callee], to, observed));
    }
    if let Some(at) = placed.placed.get(services.len()) {
        nodes.push(folded_node(folded.len(), &at.service));
    }
    let mut words = words(namespace, services, &calls, &listed, &folded);
    if observed.is_some() {
        words.push_str(&observed_words(&edges));
    }
    let tutorial_calls = !calls.is_empty();
    ServiceGraph { width: placed.width, height: placed.height, words, nodes, edges, tutorial_calls }
}

/// Whether a service's versions are drawn as boxes with an edge each: when its routing or
/// its observed traffic tells them apart, or a call starts from them. A service that
/// spreads requests over all pods, with no call and nothing observed, is one box that
/// lists its versions: edges that all say `round-robin` tell nothing, and fifty such
/// services would make the picture four times as tall (Kiali hides such idle nodes).
fn fans_out(index: usize, service: &ServiceInput, calls: &[(usize, usize)], observed: Option<&Observed>) -> bool {
    let round_robin = match &service.routing {
        Routing::None => true,
        Routing::Policy(policy) => policy.rules.is_empty(),
        Routing::Unknown => false,
    };
    let called = calls.iter().any(|&(caller, callee)| caller == index || callee == index);
    let seen = observed
        .is_some_and(|o| service.versions.iter().any(|v| o.to_version(&service.app, &v.version).requests > 0.0));
    !round_robin || called || seen
}

/// The idle services (not fanned out) that are not drawn: none when there are few, else all
/// but the first `IDLE_SERVICES_DRAWN - 1`. Kiali hides idle nodes; a few stay here so that a
/// small namespace is pictured whole, and fifty do not bury the services that route.
fn folded_idle_services(fanned: &[bool]) -> Vec<usize> {
    let idle: Vec<usize> = (0..fanned.len()).filter(|&i| !fanned[i]).collect();
    if idle.len() <= IDLE_SERVICES_DRAWN {
        return Vec::new();
    }
    idle[IDLE_SERVICES_DRAWN - 1..].to_vec()
}

/// One box for the `count` idle services not drawn, linking to the table that lists them.
fn folded_node(count: usize, rect: &Rect) -> Node {
    Node {
        id: "node-more-services".into(),
        // A service box's size, like any other, comes from the stylesheet.
        class: "service".into(),
        rect: *rect,
        label: format!("+{count} services"),
        detail: None,
        text_x: rect.x + rect.width / 2,
        text_y: rect.middle() + 5,
        title: None,
        href: Some(SERVICE_TABLE.into()),
        listed: vec![ListedVersion { text: "round-robin, no calls seen: see the table".into(), state: "more" }],
    }
}

fn listed_versions(service: &ServiceInput) -> Vec<ListedVersion> {
    let shown = if service.versions.len() > LISTED_VERSIONS { LISTED_VERSIONS - 1 } else { LISTED_VERSIONS };
    let mut listed: Vec<ListedVersion> = service
        .versions
        .iter()
        .take(shown)
        .map(|v| ListedVersion { text: format!("{} {}/{}", cut(&v.version, 8), v.ready, v.desired), state: v.state() })
        .collect();
    if service.versions.len() > shown {
        listed.push(ListedVersion { text: format!("+{} more", service.versions.len() - shown), state: "more" });
    }
    listed
}

/// The tutorial's calls between services that are both present, as indices.
fn known_calls(services: &[ServiceInput]) -> Vec<(usize, usize)> {
    let index = |app: &str| services.iter().position(|s| s.app == app);
    TUTORIAL_CALLS.iter().filter_map(|(caller, callee)| Some((index(caller)?, index(callee)?))).collect()
}

/// Services in a call, by depth (the longest chain of calls leading to them), and the rest.
fn layers(services: &[ServiceInput], calls: &[(usize, usize)]) -> (Vec<Vec<usize>>, Vec<usize>) {
    let mut depth: Vec<Option<usize>> = vec![None; services.len()];
    for &(caller, _) in calls {
        depth[caller].get_or_insert(0);
    }
    // The known calls form a chain, so as many passes as calls settle every depth.
    for _ in 0..calls.len() {
        for &(caller, callee) in calls {
            let next = depth[caller].unwrap_or(0) + 1;
            depth[callee] = Some(depth[callee].map_or(next, |d| d.max(next)));
        }
    }
    let mut layers: Vec<Vec<usize>> = Vec::new();
    let mut loose = Vec::new();
    for (service, depth) in depth.into_iter().enumerate() {
        match depth {
            Some(d) => {
                layers.resize_with(layers.len().max(d + 1), Vec::new);
                layers[d].push(service);
            }
            None => loose.push(service),
        }
    }
    (layers, loose)
}

/// For each version of `service`: the label lines of its edge and the edge's class; the
/// observed rate last.
fn version_labels(service: &ServiceInput, observed: Option<&Observed>) -> Vec<EdgeLines> {
    let mut labels = configured_labels(service);
    for (lines, version) in labels.iter_mut().zip(&service.versions) {
        if let Some(observed) = observed {
            lines.observed =
                Some(format!("{OBSERVED} {}", observed.to_version(&service.app, &version.version).label()));
        }
    }
    labels
}

/// For each version of `service`: what the routing sends it and the marks of what reaches
/// it, and the edge's class.
fn configured_labels(service: &ServiceInput) -> Vec<EdgeLines> {
    service
        .versions
        .iter()
        .map(|version| match &service.routing {
            Routing::None => EdgeLines::of(vec![round_robin(service, version)], "route"),
            Routing::Unknown => EdgeLines::of(vec!["see routing page".to_owned()], "route unknown"),
            Routing::Policy(policy) if policy.rules.is_empty() => {
                EdgeLines::of(vec![round_robin(service, version)], "route")
            }
            Routing::Policy(policy) => {
                let mut lines = match shares_of(policy, &version.version) {
                    lines if lines.is_empty() => EdgeLines::of(vec!["no traffic".to_owned()], "route unrouted"),
                    lines => EdgeLines::of(lines, "route"),
                };
                let subset = policy.subsets.iter().find(|s| policy.display_name(&s.name) == version.version);
                if let Some(subset) = subset {
                    lines.marks = subset_marks(policy, &subset.name, service.canary.as_ref());
                }
                lines
            }
        })
        .collect()
}

/// A version's share of round-robin (of one version's, all): its ready pods among the service's, as kube-proxy and
/// Envoy spread requests over ready endpoints (`round-robin 2/3 (67%)`).
fn round_robin(service: &ServiceInput, version: &VersionSummary) -> String {
    if service.versions.len() == 1 {
        return "round-robin".to_owned();
    }
    let ready: i32 = service.versions.iter().map(|v| v.ready.max(0)).sum();
    if ready == 0 {
        return "round-robin: none ready".to_owned();
    }
    let mine = version.ready.max(0);
    format!("round-robin {mine}/{ready} ({}%)", (f64::from(mine) * 100.0 / f64::from(ready)).round())
}

/// What each rule sends to `version`: `90%` when one rule routes everyone, else
/// `Firefox users: 100%`, `everyone else: 10%`.
fn shares_of(policy: &RoutingPolicy, version: &str) -> Vec<String> {
    let only_rule = policy.rules.len() == 1 && policy::condition(&policy.rules[0]).is_none();
    let mut lines = Vec::new();
    for (index, rule) in policy.rules.iter().enumerate() {
        for share in &rule.route {
            let all_pods = share.subset == ALL_PODS;
            if !all_pods && policy.display_name(&share.subset) != version {
                continue;
            }
            let percent = share.weight.percent().unwrap_or(0);
            let share = if all_pods { format!("{percent}% over all") } else { format!("{percent}%") };
            lines.push(if only_rule { share } else { format!("{}: {share}", policy::audience(index, rule)) });
        }
    }
    lines
}

fn service_node(namespace: &str, service: &ServiceInput, rect: &Rect) -> Node {
    Node {
        id: format!("node-{}", service.app),
        class: "service".into(),
        rect: *rect,
        label: cut(&service.app, 15),
        detail: None,
        text_x: rect.x + rect.width / 2,
        text_y: rect.middle() + 5,
        title: Some(format!("{}: {}", service.app, service.summary)),
        href: Some(format!("/ns/{namespace}/routes/{}", service.app)),
        listed: Vec::new(),
    }
}

fn version_node(service: &ServiceInput, version: &VersionSummary, rect: &Rect) -> Node {
    Node {
        id: format!("node-{}-{}", service.app, version.version),
        class: format!("version state-{}", version.state()),
        rect: *rect,
        label: cut(&version.version, 6),
        detail: Some(format!("{}/{}", version.ready, version.desired)),
        text_x: rect.x + 8,
        text_y: rect.middle() + 4,
        title: Some(format!("Deployment {}: {}/{} ready", version.deployment, version.ready, version.desired)),
        href: None,
        listed: Vec::new(),
    }
}

/// How long the edges to a service's versions run straight before reaching them: long
/// enough that their labels sit above a straight line, not across a curve.
fn straight_run(labels: &[EdgeLines]) -> i32 {
    let widest = labels.iter().flat_map(EdgeLines::lines).map(|(line, _)| line.chars().count().min(LABEL_CHARS)).max();
    let run = i32::try_from(widest.unwrap_or(0)).unwrap_or(0) * CHAR_WIDTH + 12;
    // Leave the curve some room to turn.
    run.min(layout::LABEL_GAP - 24)
}

fn route_edge(
    service: &ServiceInput,
    version: &VersionSummary,
    edge_lines: &EdgeLines,
    (from, to): (&Rect, &Rect),
    straight: i32,
) -> Edge {
    let end_y = to.middle();
    let lines = edge_lines.lines();
    let count = i32::try_from(lines.len()).unwrap_or(1);
    // The lines stack upwards from just above the edge's end, right-aligned to the version.
    let labels = lines
        .iter()
        .zip(0..)
        .map(|((text, class), i)| EdgeLabel {
            x: to.x - 6,
            y: end_y - 5 - (count - 1 - i) * LINE_HEIGHT,
            text: cut(text, LABEL_CHARS),
            anchor: "end",
            class,
        })
        .collect();
    let words: Vec<&str> = lines.iter().map(|(text, _)| *text).collect();
    Edge {
        id: format!("edge-{}-{}", service.app, version.version),
        class: edge_lines.class,
        path: format!("{} L{} {end_y}", curve(from.right(), from.middle(), to.x - straight, end_y), to.x),
        labels,
        title: format!("{} → {}: {}", service.app, version.version, words.join(", ")),
    }
}

/// A call from every version of the caller (or the caller itself, before it has one),
/// labelled with the rate observed from that Deployment.
fn call_edges(
    caller: &ServiceInput,
    from: &Placed,
    callee: &ServiceInput,
    to: &Placed,
    observed: Option<&Observed>,
) -> Vec<Edge> {
    let sources: Vec<(String, Option<&str>, &Rect)> = if from.versions.is_empty() {
        vec![(caller.app.clone(), None, &from.service)]
    } else {
        let versions = caller.versions.iter().zip(&from.versions);
        versions.map(|(v, r)| (format!("{}-{}", caller.app, v.version), Some(v.deployment.as_str()), r)).collect()
    };
    sources
        .into_iter()
        .map(|(source, deployment, rect)| {
            let rate = observed.zip(deployment).map(|(o, d)| o.call(d, &callee.app).label());
            let (x1, y1, x2, y2) = (rect.right(), rect.middle(), to.service.x, to.service.middle());
            // The gap between columns is narrow: the rate and its errors on lines of their own.
            let lines: Vec<&str> = rate.iter().flat_map(|rate| rate.split(", ")).collect();
            let count = i32::try_from(lines.len()).unwrap_or(1);
            let labels = lines.iter().zip(0..).map(|(text, i)| EdgeLabel {
                x: (x1 + x2) / 2,
                y: y1.min(y2) - 6 - (count - 1 - i) * LINE_HEIGHT,
                text: (*text).to_owned(),
                anchor: "middle",
                class: "",
            });
            let title = format!("{source} calls {}", callee.app);
            Edge {
                id: format!("call-{source}-{}", callee.app),
                class: "call",
                path: curve(x1, y1, x2, y2),
                labels: labels.collect(),
                title: rate.as_ref().map_or(title.clone(), |rate| format!("{title}: {OBSERVED} {rate}")),
            }
        })
        .collect()
}

/// The observed rates in words: `Observed over the last minute: …`.
fn observed_words(edges: &[Edge]) -> String {
    let parts: Vec<&str> = edges.iter().filter(|e| e.title.contains(OBSERVED)).map(|e| e.title.as_str()).collect();
    if parts.is_empty() {
        return String::new();
    }
    format!(" Observed over the last minute: {}.", parts.join("; "))
}

/// A horizontal S-curve from one box's right side to another's left side.
fn curve(x1: i32, y1: i32, x2: i32, y2: i32) -> String {
    let middle = (x1 + x2) / 2;
    format!("M{x1} {y1} C{middle} {y1} {middle} {y2} {x2} {y2}")
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let kept: String = text.chars().take(max - 1).collect();
    format!("{kept}…")
}

/// The picture in words: the calls, then each service with its versions and its routing;
/// the services drawn as one box (`listed`, by index) together at the end, and how many more
/// (`folded`) the table lists.
fn words(
    namespace: &str,
    services: &[ServiceInput],
    calls: &[(usize, usize)],
    listed: &[bool],
    folded: &[usize],
) -> String {
    if services.is_empty() {
        return format!("No services in {namespace}.");
    }
    let mut sentences = vec![format!("Services of {namespace}")];
    sentences.extend(calls.iter().map(|&(a, b)| format!("{} calls {}", services[a].app, services[b].app)));
    let mut round_robin = Vec::new();
    for (index, (service, &listed)) in services.iter().zip(listed).enumerate() {
        if folded.contains(&index) {
            continue;
        }
        if listed {
            let versions: Vec<String> =
                service.versions.iter().map(|v| format!("{} {}/{} ready", v.version, v.ready, v.desired)).collect();
            round_robin.push(format!("{} ({})", service.app, versions.join(", ")));
            continue;
        }
        let versions: Vec<String> =
            service.versions.iter().map(|v| format!("{} ({}/{} ready)", v.version, v.ready, v.desired)).collect();
        let versions = if versions.is_empty() { "no versions".to_owned() } else { versions.join(", ") };
        sentences.push(format!("{}: {versions}; {}", service.app, service.summary));
    }
    if !round_robin.is_empty() {
        sentences.push(format!("Round-robin over all pods: {}", round_robin.join("; ")));
    }
    if !folded.is_empty() {
        sentences.push(format!(
            "{} more services round-robin over all pods with no call seen; the services table lists them",
            folded.len()
        ));
    }
    sentences.join(". ") + "."
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn version(app: &str, version: &str) -> VersionSummary {
        VersionSummary {
            name: format!("{app}-{version}"),
            deployment: format!("{app}-{version}"),
            app: app.into(),
            version: version.into(),
            desired: 1,
            ready: 1,
        }
    }

    fn service(app: &str, versions: &[&str], routing: Routing) -> ServiceInput {
        let summary = match &routing {
            Routing::Policy(policy) => policy::summary(policy),
            _ => "no routing policy".into(),
        };
        let versions = versions.iter().map(|v| version(app, v)).collect();
        ServiceInput { app: app.into(), versions, routing, summary, canary: None }
    }

    fn recommendation(rules: serde_json::Value) -> Routing {
        Routing::Policy(
            serde_json::from_value(json!({"host": "recommendation",
                "subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}}, "rules": rules}))
            .unwrap(),
        )
    }

    fn tutorial(routing: Routing) -> Vec<ServiceInput> {
        vec![
            service("customer", &["v1"], Routing::None),
            service("preference", &["v1"], Routing::None),
            service("recommendation", &["v1", "v2", "v3"], routing),
        ]
    }

    fn edge<'a>(graph: &'a ServiceGraph, id: &str) -> &'a Edge {
        graph.edges.iter().find(|e| e.id == id).unwrap_or_else(|| panic!("no {id}"))
    }

    fn label_texts(edge: &Edge) -> Vec<&str> {
        edge.labels.iter().map(|l| l.text.as_str()).collect()
    }

    #[test]
    fn the_tutorial_chain_with_a_split_and_the_firefox_rule() {
        let graph = graph(
            "tutorial",
            &tutorial(recommendation(json!([
                {"match": [{"headers": {"baggage-user-agent": {"regex": ".*Firefox.*"}}}], "route": {"version-v2": 100}},
                {"route": {"version-v1": 90, "version-v2": 10}}]))),
            None,
        );
        assert_eq!(label_texts(edge(&graph, "edge-recommendation-v1")), ["everyone else: 90%"]);
        assert_eq!(label_texts(edge(&graph, "edge-recommendation-v2")), ["Firefox users: 100%", "everyone else: 10%"]);
        assert_eq!(label_texts(edge(&graph, "edge-recommendation-v3")), ["no traffic"]);
        assert_eq!(edge(&graph, "edge-recommendation-v3").class, "route unrouted");
        assert_eq!(label_texts(edge(&graph, "edge-customer-v1")), ["round-robin"]);
        let calls: Vec<&str> = graph.edges.iter().filter(|e| e.class == "call").map(|e| e.id.as_str()).collect();
        assert_eq!(calls, ["call-customer-v1-preference", "call-preference-v1-recommendation"]);
        assert!(graph.words.contains("customer calls preference. preference calls recommendation"), "{}", graph.words);
        assert!(graph.words.contains("recommendation: v1 (1/1 ready), v2 (1/1 ready), v3 (1/1 ready); Firefox users → v2; everyone else: v1 90% · v2 10%"), "{}", graph.words);
    }

    #[test]
    fn without_routing_each_version_gets_its_share_of_the_ready_pods() {
        let mut services = tutorial(Routing::None);
        services[2].versions.truncate(2);
        services[2].versions[1].desired = 2;
        services[2].versions[1].ready = 2;
        let drawn = graph("t", &services, None);
        assert_eq!(label_texts(edge(&drawn, "edge-recommendation-v1")), ["round-robin 1/3 (33%)"]);
        assert_eq!(label_texts(edge(&drawn, "edge-recommendation-v2")), ["round-robin 2/3 (67%)"]);
        services[2].versions[1].ready = 0;
        services[2].versions[0].ready = 0;
        let drawn = graph("t", &services, None);
        assert_eq!(label_texts(edge(&drawn, "edge-recommendation-v1")), ["round-robin: none ready"]);
    }

    #[test]
    fn timeouts_faults_mirrors_and_a_canary_are_marked_on_the_edges_they_reach() {
        let mut services = tutorial(recommendation(json!([
            {"match": [{"headers": {"baggage-user-agent": {"regex": ".*Firefox.*"}}}], "route": {"version-v2": 100},
             "fault": {"abort": {"httpStatus": 503, "percentage": 10}}},
            {"route": {"version-v1": 75, "version-v2": 25}, "timeout": "1s", "mirror": {"subset": "version-v1"}}])));
        let Routing::Policy(policy) = &services[2].routing else { unreachable!() };
        services[2].canary = Some(Canary::start(policy, "version-v1", "version-v2", &[25]).unwrap());
        let drawn = graph("t", &services, None);
        let v2 = edge(&drawn, "edge-recommendation-v2");
        assert_eq!(
            label_texts(v2),
            ["Firefox users: 100%", "everyone else: 25%", "10% fail with 503", "timeout 1s", "canary v2 25%, step 1/2"]
        );
        let classes: Vec<&str> = v2.labels.iter().map(|l| l.class).collect();
        assert_eq!(classes, ["", "", "mark-abort", "mark-timeout", "mark-canary"]);
        assert!(v2.title.ends_with("canary v2 25%, step 1/2"), "the title says it whole: {}", v2.title);
        let v1 = label_texts(edge(&drawn, "edge-recommendation-v1"));
        assert_eq!(v1, ["everyone else: 75%", "timeout 1s", "100% mirrored to v1", "canary v2 25%, step 1/2"]);
        assert_eq!(label_texts(edge(&drawn, "edge-recommendation-v3")), ["no traffic"]);
    }

    #[test]
    fn only_a_namespace_with_the_tutorials_calls_is_captioned_with_them() {
        assert!(graph("t", &tutorial(Routing::None), None).tutorial_calls);
        let shop = [service("cart", &["v1"], Routing::None), service("ledger", &["v1", "v2"], Routing::None)];
        assert!(!graph("shop", &shop, None).tutorial_calls, "no tutorial here: no caption about it");
    }

    #[test]
    fn one_catch_all_rule_labels_edges_with_bare_weights() {
        let graph =
            graph("t", &tutorial(recommendation(json!([{"route": {"version-v1": 75, "version-v2": 25}}]))), None);
        assert_eq!(label_texts(edge(&graph, "edge-recommendation-v1")), ["75%"]);
        assert_eq!(label_texts(edge(&graph, "edge-recommendation-v2")), ["25%"]);
        assert_eq!(edge(&graph, "edge-recommendation-v2").title, "recommendation → v2: 25%");
    }

    #[test]
    fn layers_follow_the_calls_and_others_have_no_call_edges() {
        let mut services = tutorial(Routing::None);
        services.insert(0, service("billing", &["v1"], Routing::Unknown));
        let graph = graph("t", &services, None);
        let x = |id: &str| graph.nodes.iter().find(|n| n.id == id).unwrap().rect.x;
        assert!(x("node-customer") < x("node-preference") && x("node-preference") < x("node-recommendation"));
        let y = |id: &str| graph.nodes.iter().find(|n| n.id == id).unwrap().rect.y;
        assert!(y("node-billing") > y("node-customer"), "below the chain");
        assert!(graph.edges.iter().all(|e| !e.id.contains("billing") || e.class != "call"));
        assert_eq!(label_texts(edge(&graph, "edge-billing-v1")), ["see routing page"]);
        let service = graph.nodes.iter().find(|n| n.id == "node-billing").unwrap();
        assert_eq!(service.href.as_deref(), Some("/ns/t/routes/billing"));
    }

    #[test]
    fn without_preference_there_is_no_call_edge() {
        let services =
            vec![service("customer", &["v1"], Routing::None), service("recommendation", &["v1"], Routing::None)];
        let graph = graph("t", &services, None);
        assert!(graph.edges.iter().all(|e| e.class != "call"));
        assert!(!graph.words.contains("calls"));
    }

    #[test]
    fn long_conditions_are_cut_on_the_picture_and_whole_in_words() {
        let graph = graph(
            "t",
            &tutorial(recommendation(json!([
                {"match": [{"headers": {"x-very-long-header-name": {"exact": "some-value"}}}], "route": {"version-v2": 100}},
                {"route": {"version-v1": 100}}]))),
            None,
        );
        let v2 = edge(&graph, "edge-recommendation-v2");
        assert_eq!(v2.labels[0].text.chars().count(), LABEL_CHARS);
        assert!(v2.labels[0].text.ends_with('…'));
        assert!(v2.title.contains("requests with header x-very-long-header-name = some-value: 100%"), "{}", v2.title);
    }

    #[test]
    fn labels_sit_on_the_straight_end_of_their_edge() {
        let graph =
            graph("t", &tutorial(recommendation(json!([{"route": {"version-v1": 90, "version-v2": 10}}]))), None);
        let v1 = edge(&graph, "edge-recommendation-v1");
        let version = graph.nodes.iter().find(|n| n.id == "node-recommendation-v1").unwrap().rect;
        // `… {x} {y} L{x} {y}`: where the curve ends and the straight part starts.
        let straight_from: i32 = v1.path.rsplit(' ').nth(3).unwrap().parse().unwrap();
        assert!(v1.path.ends_with(&format!("L{} {}", version.x, version.middle())), "{}", v1.path);
        assert!(straight_from <= v1.labels[0].x - 3 * CHAR_WIDTH, "`90%` fits above the straight part: {}", v1.path);
    }

    #[test]
    fn observed_rates_label_versions_and_calls_and_are_said_in_words() {
        let sample = |source: &str, service: &str, version: &str, value: f64| crate::istio::Sample {
            labels: [
                ("source_workload", source),
                ("destination_service_name", service),
                ("destination_version", version),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            value,
        };
        let requests =
            [sample("preference-v1", "recommendation", "v1", 4.0), sample("customer-v1", "preference", "v1", 4.0)];
        let errors = [sample("preference-v1", "recommendation", "v1", 1.0)];
        let observed = Observed::from_samples(&requests, &errors);
        let graph = graph("t", &tutorial(recommendation(json!([{"route": {"version-v1": 100}}]))), Some(&observed));
        assert_eq!(label_texts(edge(&graph, "edge-recommendation-v1")), ["100%", "observed 4.0/s, 25% err"]);
        assert_eq!(label_texts(edge(&graph, "edge-recommendation-v2")), ["no traffic", "observed 0.0/s"]);
        assert_eq!(label_texts(edge(&graph, "call-preference-v1-recommendation")), ["4.0/s", "25% err"]);
        assert_eq!(label_texts(edge(&graph, "call-customer-v1-preference")), ["4.0/s"]);
        assert!(
            graph.words.contains("Observed over the last minute: customer → v1: round-robin, observed 0.0/s;"),
            "{}",
            graph.words
        );
        assert!(graph.words.contains("recommendation → v1: 100%, observed 4.0/s, 25% err;"), "{}", graph.words);
        assert!(graph.words.contains("preference-v1 calls recommendation: observed 4.0/s, 25% err"), "{}", graph.words);
    }

    #[test]
    fn fifty_services_stay_three_blocks_wide() {
        let mut services = tutorial(Routing::None);
        let apps: Vec<String> = (0..47).map(|i| format!("svc-{i:02}")).collect();
        services.extend(apps.iter().map(|app| service(app, &["v1", "v2"], split_policy(app))));
        let graph = graph("t", &services, None);
        assert_eq!(graph.nodes.len(), 2 + 2 + 4 + 47 * 3, "a node per service and per version");
        assert!(graph.width < 1300, "readable on a laptop without scrolling sideways: {}", graph.width);
        assert!(graph.nodes.iter().all(|n| n.rect.right() <= graph.width && n.rect.y + n.rect.height <= graph.height));
    }

    fn split_policy(app: &str) -> Routing {
        Routing::Policy(
            serde_json::from_value(json!({"host": app,
                "subsets": {"version-v1": {"version": "v1"}, "version-v2": {"version": "v2"}},
                "rules": [{"route": {"version-v1": 50, "version-v2": 50}}]}))
            .unwrap(),
        )
    }

    #[test]
    fn a_round_robin_service_without_calls_is_one_box_listing_its_versions() {
        let mut services = tutorial(Routing::None);
        let mut billing = service("billing", &["v1", "v2"], Routing::None);
        billing.versions[1].ready = 0;
        services.push(billing);
        services.push(service("ledger", &["v1", "v2", "v3", "v4", "v5"], Routing::None));
        let graph = graph("t", &services, None);
        let node = |id: &str| graph.nodes.iter().find(|n| n.id == id).unwrap_or_else(|| panic!("no {id}"));
        let listed = |id: &str| node(id).listed.iter().map(|v| (v.text.as_str(), v.state)).collect::<Vec<_>>();
        assert_eq!(listed("node-billing"), [("v1 1/1", "ready"), ("v2 0/1", "progressing")]);
        assert_eq!(
            listed("node-ledger"),
            [("v1 1/1", "ready"), ("v2 1/1", "ready"), ("v3 1/1", "ready"), ("+2 more", "more")]
        );
        assert!(graph.nodes.iter().all(|n| !n.id.starts_with("node-billing-")), "no version boxes");
        assert!(graph.edges.iter().all(|e| !e.id.contains("billing")), "no edges");
        assert!(
            graph.words.ends_with(
                "Round-robin over all pods: billing (v1 1/1 ready, v2 0/1 ready); \
                 ledger (v1 1/1 ready, v2 1/1 ready, v3 1/1 ready, v4 1/1 ready, v5 1/1 ready)."
            ),
            "{}",
            graph.words
        );
        // The tutorial's services call each other: their versions stay boxes, calls start there.
        assert!(node("node-customer").listed.is_empty() && node("node-customer-v1").rect.width > 0);
        assert_eq!(label_texts(edge(&graph, "edge-customer-v1")), ["round-robin"]);
    }

    #[test]
    fn past_six_idle_services_one_box_counts_the_rest_and_links_to_the_table() {
        let idle = |count: usize| -> Vec<ServiceInput> {
            let mut services = tutorial(split_policy("recommendation"));
            services.extend((0..count).map(|i| service(&format!("svc-{i:02}"), &["v1", "v2"], Routing::None)));
            services
        };
        let ids = |graph: &ServiceGraph| graph.nodes.iter().map(|n| n.id.clone()).collect::<Vec<_>>();
        let six = graph("t", &idle(6), None);
        assert!((0..6).all(|i| ids(&six).contains(&format!("node-svc-{i:02}"))), "six are all drawn");
        assert!(!ids(&six).contains(&"node-more-services".to_owned()));

        let fifty = graph("t", &idle(50), None);
        let drawn: Vec<String> = ids(&fifty).into_iter().filter(|id| id.starts_with("node-svc-")).collect();
        assert_eq!(drawn, ["node-svc-00", "node-svc-01", "node-svc-02", "node-svc-03", "node-svc-04"]);
        let more = fifty.nodes.iter().find(|n| n.id == "node-more-services").expect("a box for the rest");
        assert_eq!((more.label.as_str(), more.href.as_deref()), ("+45 services", Some("#service-table")));
        // The routed and called services are still drawn whole.
        assert_eq!(label_texts(edge(&fifty, "edge-recommendation-v2")), ["50%"]);
        assert!(fifty.words.contains("svc-04 (v1 1/1 ready, v2 1/1 ready)."), "{}", fifty.words);
        assert!(!fifty.words.contains("svc-05"), "{}", fifty.words);
        assert!(
            fifty.words.ends_with(
                "45 more services round-robin over all pods with no call seen; the services table lists them."
            )
        );
        assert!(fifty.height < six.height + 60, "the rest take one row: {} vs {}", fifty.height, six.height);
    }

    #[test]
    fn routing_or_observed_traffic_draws_the_versions_apart() {
        let routed = service("billing", &["v1", "v2"], split_policy("billing"));
        let graph = graph("t", &[routed], None);
        assert_eq!(label_texts(edge(&graph, "edge-billing-v2")), ["50%"]);
        let sample = crate::istio::Sample {
            labels: [
                ("source_workload", "gateway"),
                ("destination_service_name", "ledger"),
                ("destination_version", "v2"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            value: 2.0,
        };
        let observed = Observed::from_samples(&[sample], &[]);
        let ledger = service("ledger", &["v1", "v2"], Routing::None);
        let graph = super::graph("t", std::slice::from_ref(&ledger), Some(&observed));
        assert_eq!(label_texts(edge(&graph, "edge-ledger-v2")), ["round-robin 1/2 (50%)", "observed 2.0/s"]);
        let quiet = super::graph("t", &[ledger], Some(&Observed::default()));
        assert!(quiet.edges.is_empty(), "nothing observed: one box");
    }

    #[test]
    fn an_empty_namespace_says_so() {
        let graph = graph("t", &[], Some(&Observed::default()));
        assert_eq!(graph.words, "No services in t.");
        assert!(graph.nodes.is_empty());
    }
}
