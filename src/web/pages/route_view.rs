//! What the routing page shows, prepared for its templates.
use std::collections::BTreeMap;

use crate::change::routes::{Ambiguous, LiveRouting, ResourceVersions, RoutingApi};
use crate::change::{Change, Preview, canary, documents};
use crate::istio::VirtualService;
use crate::pictures::bars::BarSet;
use crate::policy::canary::Canary;
use crate::policy::{self, FieldError, RoutingPolicy};
use crate::problem::FieldProblem;

use super::route_forms::RuleSettings;

#[derive(Clone)]
pub struct SubsetRow {
    pub name: String,
    pub labels: String,
    /// Its share in the rule that matches every request.
    pub weight: u32,
}

/// A rule, and its settings as the timeouts/retries/faults form shows them (empty: unset).
#[derive(Clone, Default)]
pub struct RuleRow {
    pub index: usize,
    pub description: String,
    pub settings: RuleSettings,
}

impl RuleRow {
    fn of(policy: &RoutingPolicy, index: usize, rule: &policy::Rule) -> Self {
        let single = RoutingPolicy { rules: vec![rule.clone()], ..policy.clone() };
        let text = |value: Option<String>| value.unwrap_or_default();
        let number = |value: Option<f64>| value.map(|v| v.to_string()).unwrap_or_default();
        let delay = rule.fault.as_ref().and_then(|fault| fault.delay.as_ref());
        let abort = rule.fault.as_ref().and_then(|fault| fault.abort.as_ref());
        let settings = RuleSettings {
            timeout: text(rule.timeout.clone()),
            retry_attempts: text(rule.retries.as_ref().and_then(|r| r.attempts).map(|a| a.to_string())),
            per_try_timeout: text(rule.retries.as_ref().and_then(|r| r.per_try_timeout.clone())),
            delay: text(delay.and_then(|d| d.fixed_delay.clone())),
            delay_percent: number(delay.and_then(|d| d.percentage)),
            abort_status: text(abort.and_then(|a| a.http_status).map(|s| s.to_string())),
            abort_percent: number(abort.and_then(|a| a.percentage)),
            mirror_subset: text(rule.mirror.as_ref().map(|m| m.subset.clone())),
            mirror_percent: number(rule.mirror.as_ref().and_then(|m| m.percentage)),
        };
        RuleRow { index, description: policy::summary(&single), settings }
    }

    /// The form's key for [`RoutesView::typed`].
    pub fn form(&self) -> String {
        format!("resilience-{}", self.index)
    }
}

#[derive(Clone)]
pub struct DiffLine {
    pub class: &'static str,
    pub text: String,
}

impl DiffLine {
    /// A unified diff as lines classed for display.
    pub fn parse(diff: &str) -> Vec<DiffLine> {
        diff.lines().map(|line| DiffLine { class: Self::class_of(line), text: line.to_owned() }).collect()
    }

    /// The CSS class of a unified-diff line: added, deleted, hunk header or context.
    fn class_of(line: &str) -> &'static str {
        match line.chars().next() {
            Some('+') if !line.starts_with("+++") => "add",
            Some('-') if !line.starts_with("---") => "del",
            Some('@') => "hunk",
            _ => "ctx",
        }
    }
}

#[derive(Clone)]
pub struct PreviewView {
    pub action: String,
    pub summary: String,
    pub change_summary: String,
    pub warnings: Vec<String>,
    pub diff: Vec<DiffLine>,
    pub objects_yaml: String,
    /// What the change writes that Argo CD, Flux or Helm owns, in words.
    pub owned: Vec<String>,
    /// `--gitops=refuse` and something is owned: no Apply, the objects are for Git.
    pub for_git_only: bool,
    pub policy_json: String,
    /// The rules as bars, before and after the change.
    pub bar_sets: Vec<BarSet>,
    pub rv_vs: String,
    pub rv_dr: String,
    pub rv_hr: String,
}

#[derive(Clone)]
pub struct TestResultView {
    pub headers: String,
    pub matched: Option<String>,
    /// Why the rule won over other matching ones (an HTTPRoute's precedence).
    pub why: Option<String>,
    pub shares: Vec<(String, u32)>,
    /// The workload the request was sent from; empty: not said.
    pub source: String,
    /// No rule matched a VirtualService's rules: the sidecar answers 404.
    pub no_route: bool,
}

/// More workloads than this and the route tester asks for a name instead of listing them.
pub const LISTED_CALLERS: usize = 50;

/// A status condition istiod wrote on the HTTPRoute, for its current generation.
#[derive(Clone)]
pub struct ConditionRow {
    pub parent: String,
    pub kind: String,
    pub status: String,
    pub reason: String,
    pub message: String,
}

impl ConditionRow {
    fn of(route: &crate::gateway_api::HTTPRoute) -> Vec<Self> {
        let conditions = route.current_conditions().into_iter();
        conditions
            .map(|(parent, c)| ConditionRow {
                parent,
                kind: c.kind,
                status: c.status,
                reason: c.reason,
                message: c.message,
            })
            .collect()
    }
}

/// One object of routing signalbox shows but does not edit (several VirtualServices for a
/// host, or delegation): what it is, what it does in words, and its YAML.
#[derive(Clone)]
pub struct RoutingObjectView {
    pub kind: &'static str,
    pub name: String,
    pub role: String,
    pub words: String,
    pub yaml: String,
}

/// Why the host's routing is shown but not edited, and every object involved.
#[derive(Clone)]
pub struct AmbiguousView {
    pub reason: String,
    pub objects: Vec<RoutingObjectView>,
}

#[derive(Clone)]
pub struct RoutesView {
    pub namespace: String,
    pub host: String,
    pub csrf_token: String,
    pub can_route: bool,
    /// Whether the route tester is offered: routing that is understood, or several mesh
    /// HTTPRoutes, whose rules it merges as istiod does.
    pub testable: bool,
    pub policy: RoutingPolicy,
    pub summary: String,
    /// The live rules as bars; none when the routing is not understood or spread over objects.
    pub live_bars: Option<BarSet>,
    /// `VirtualService` or `HTTPRoute`: which API routes the host.
    pub api: &'static str,
    /// How the route tester picks the rule.
    pub precedence: policy::Precedence,
    /// Whether an HTTPRoute can retry here (the Gateway API experimental channel).
    pub http_route_retries: bool,
    /// The HTTPRoute, and what istiod says of its current generation.
    pub http_route_name: Option<String>,
    pub http_route_yaml: Option<String>,
    pub http_route_conditions: Vec<ConditionRow>,
    /// istiod's analysis messages on the VirtualService and DestinationRule.
    pub analysis: Vec<crate::istio::AnalysisNote>,
    /// The Gateways the edited HTTPRoute attaches to (an ingress route), if any.
    pub http_route_gateways: Vec<String>,
    /// Other ingress HTTPRoutes to the host, not edited here: name and Gateways.
    pub ingress_routes: Vec<(String, String)>,
    /// The host's per-version Services, and the deployed versions without one.
    pub version_services: Vec<String>,
    pub versions_without_service: Vec<String>,
    /// The names of the objects edited, which need not be the host's.
    pub vs_name: Option<String>,
    pub dr_name: Option<String>,
    pub vs_yaml: Option<String>,
    pub dr_yaml: Option<String>,
    pub subsets: Vec<SubsetRow>,
    pub rules: Vec<RuleRow>,
    pub deployed_versions: Vec<String>,
    pub kiali: Option<String>,
    pub jaeger: Option<String>,
    pub errors: BTreeMap<String, String>,
    /// What was typed into a refused form, shown again in it instead of the live values:
    /// its fields by name, under the key `form` (`split`, `header`, `resilience-1`, ...).
    pub typed: BTreeMap<String, String>,
    pub error: Option<String>,
    pub notice: Option<String>,
    /// After a change: how far it got to the proxies.
    pub sync: Option<super::sync_panel::SyncPanel>,
    pub conflict: Option<String>,
    pub preview: Option<PreviewView>,
    pub test_result: Option<TestResultView>,
    /// The route tester's refusal of the headers typed, and them.
    pub test_error: Option<(String, String)>,
    /// The workloads the route tester may ask "as seen from" (Deployments of the namespace
    /// the actor may view), and the one asked as last.
    pub callers: std::sync::Arc<Vec<(String, String)>>,
    pub test_source: String,
    /// Whether istiod is known: the page then loads what a sidecar has (`envoy_routes`).
    pub istiod: bool,
    /// Set instead of the forms when the routing is spread over several objects.
    pub ambiguous: Option<AmbiguousView>,
    /// signalbox's last change here, when it was overwritten from outside.
    pub overwritten: Option<crate::change::outside::Overwrite>,
}

impl RoutesView {
    pub fn new(
        namespace: &str,
        host: &str,
        live: &LiveRouting,
        deployed_versions: Vec<String>,
        csrf_token: String,
        can_route: bool,
        (kiali, jaeger): (Option<String>, Option<String>),
    ) -> Self {
        let ambiguous = live.ambiguous.as_ref().map(|a| AmbiguousView::new(host, a));
        // Several mesh HTTPRoutes are not edited here, but their rules can be tested together.
        let tested = live.tested_policy(host);
        let testable = ambiguous.is_none() || tested.is_ok();
        let (policy, error) = match tested {
            Ok(policy) => (policy, None),
            Err(_) if ambiguous.is_some() => (RoutingPolicy::new(host), None),
            Err(error) => (RoutingPolicy::new(host), Some(format!("The live routing is not understood: {error}"))),
        };
        let summary = if let Some(ambiguous) = &live.ambiguous {
            format!("routed by {}", ambiguous.objects.describe())
        } else if live.exists() {
            policy::summary(&policy)
        } else {
            "no routing policy: round-robin over all pods".into()
        };
        let yaml = |object: Option<serde_json::Value>| {
            object.map(|o| documents::to_yaml(&crate::cluster::without_server_fields(o)))
        };
        let understood = error.is_none() && ambiguous.is_none() && live.exists();
        Self {
            namespace: namespace.to_owned(),
            host: host.to_owned(),
            live_bars: understood.then(|| BarSet::of("rule-bars", "", Some(&policy), canary::current(live).as_ref())),
            csrf_token,
            // Ambiguous routing is shown, never edited: no forms.
            can_route: can_route && ambiguous.is_none(),
            testable,
            summary,
            api: match live.api {
                RoutingApi::VirtualService => "VirtualService",
                RoutingApi::HTTPRoute => "HTTPRoute",
            },
            precedence: live.precedence(),
            http_route_retries: false,
            http_route_name: live.http_route.as_ref().and_then(|route| route.metadata.name.clone()),
            http_route_yaml: live.http_route.as_ref().map(yaml_of),
            http_route_conditions: live.http_route.as_ref().map(ConditionRow::of).unwrap_or_default(),
            analysis: live.analysis(),
            http_route_gateways: live.http_route.as_ref().map(|route| route.gateways()).unwrap_or_default(),
            ingress_routes: live
                .ingress_routes
                .iter()
                .map(|route| (route.metadata.name.clone().unwrap_or_default(), route.gateways().join(", ")))
                .collect(),
            version_services: live.versions.iter().map(|v| v.name.clone()).collect(),
            versions_without_service: deployed_versions
                .iter()
                .filter(|version| !live.versions.iter().any(|v| v.labels.get("version") == Some(*version)))
                .cloned()
                .collect(),
            vs_name: live.virtual_service.as_ref().and_then(|vs| vs.metadata.name.clone()),
            dr_name: live.destination_rule.as_ref().and_then(|dr| dr.metadata.name.clone()),
            vs_yaml: yaml(live.virtual_service.as_ref().and_then(|vs| serde_json::to_value(vs).ok())),
            dr_yaml: yaml(live.destination_rule.as_ref().and_then(|dr| serde_json::to_value(dr).ok())),
            subsets: subset_rows(&policy),
            rules: rule_rows(&policy),
            deployed_versions,
            kiali,
            jaeger,
            errors: BTreeMap::new(),
            typed: BTreeMap::new(),
            error,
            notice: None,
            sync: None,
            conflict: None,
            preview: None,
            test_result: None,
            test_error: None,
            callers: Default::default(),
            test_source: String::new(),
            istiod: false,
            ambiguous,
            overwritten: None,
            policy,
        }
    }

    /// Problems next to their fields; those without a form field in a banner.
    pub fn set_problems(&mut self, problems: Vec<FieldProblem>) {
        let mut general = Vec::new();
        for problem in problems {
            match form_field(&problem.field) {
                Some(field) => {
                    self.errors.insert(field, problem.message);
                }
                None if problem.field.is_empty() => general.push(problem.message),
                None => general.push(format!("{}: {}", problem.field, problem.message)),
            }
        }
        if !general.is_empty() {
            self.error = Some(general.join("; "));
        }
    }

    /// Keeps what a refused form sent (a urlencoded body), to show it again.
    pub fn keep_typed(&mut self, body: &[u8]) {
        let mut typed: BTreeMap<String, String> = BTreeMap::new();
        for (key, value) in form_urlencoded::parse(body).into_owned() {
            match key.as_str() {
                "csrf_token" => {}
                "remove" => {
                    typed.insert(format!("remove:{value}"), "on".into());
                }
                _ => {
                    typed.insert(key, value);
                }
            }
        }
        let action = typed.get("action").cloned().unwrap_or_default();
        let form = match action.as_str() {
            "resilience" => format!("resilience-{}", typed.get("rule").map(String::as_str).unwrap_or_default()),
            _ => action,
        };
        typed.insert("form".into(), form);
        self.typed = typed;
    }

    /// The value a field of `form` shows: what was typed when that form was refused, else
    /// `live` (what the rule has).
    pub fn typed_or(&self, form: impl AsRef<str>, field: impl AsRef<str>, live: impl AsRef<str>) -> String {
        if self.refused_form(form) {
            self.typed.get(field.as_ref()).cloned().unwrap_or_default()
        } else {
            live.as_ref().to_owned()
        }
    }

    /// Whether a form's `remove` box for `setting` was ticked when it was refused.
    pub fn typed_removes(&self, form: impl AsRef<str>, setting: &str) -> bool {
        self.refused_form(form) && self.typed.contains_key(&format!("remove:{setting}"))
    }

    /// Whether this form is the one that was refused (its errors and typed values are shown).
    pub fn refused_form(&self, form: impl AsRef<str>) -> bool {
        self.typed.get("form").is_some_and(|typed_form| typed_form == form.as_ref())
    }

    pub fn error_for(&self, field: &str) -> Option<&str> {
        self.errors.get(field).map(String::as_str)
    }

    pub fn has_subsets(&self) -> bool {
        !self.subsets.is_empty()
    }
}

/// Maps a policy field path to the form field showing it, where there is one.
fn form_field(path: &str) -> Option<String> {
    let form_fields = [
        "subset",
        "preset",
        "header",
        "regex",
        "matched_subset",
        "other_subset",
        "rule",
        "timeout",
        "retry_attempts",
        "per_try_timeout",
        "delay",
        "delay_percent",
        "abort_status",
        "abort_percent",
        "mirror_subset",
        "mirror_percent",
    ];
    if form_fields.contains(&path) || path.starts_with("weight.") {
        return Some(path.to_owned());
    }
    let last = path.rsplit('.').next().unwrap_or(path);
    let mapped = match last {
        _ if path.contains(".route") => "split",
        _ if path.contains(".headers.") => "regex",
        "timeout" => "timeout",
        "attempts" => "retry_attempts",
        "perTryTimeout" => "per_try_timeout",
        "fixedDelay" => "delay",
        "httpStatus" => "abort_status",
        _ if path.contains(".mirror") => "mirror_subset",
        _ if path.contains("fault.delay") => "delay_percent",
        _ if path.contains("fault.abort") => "abort_percent",
        _ => return None,
    };
    Some(mapped.to_owned())
}

fn subset_rows(policy: &RoutingPolicy) -> Vec<SubsetRow> {
    let default_rule = policy.rules.iter().find(|rule| rule.matches.as_ref().is_none_or(|m| m.is_empty()));
    policy
        .subsets
        .iter()
        .map(|subset| SubsetRow {
            name: subset.name.clone(),
            labels: subset.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", "),
            weight: default_rule
                .and_then(|rule| rule.route.iter().find(|share| share.subset == subset.name))
                .and_then(|share| share.weight.percent())
                .unwrap_or(0),
        })
        .collect()
}

fn rule_rows(policy: &RoutingPolicy) -> Vec<RuleRow> {
    policy.rules.iter().enumerate().map(|(index, rule)| RuleRow::of(policy, index, rule)).collect()
}

impl PreviewView {
    /// The objects as a `data:` URL, for the "Download for Git" link.
    pub fn objects_download(&self) -> String {
        let encoded: String = self
            .objects_yaml
            .bytes()
            .map(|byte| match byte {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
                other => format!("%{other:02X}"),
            })
            .collect();
        format!("data:application/yaml;charset=utf-8,{encoded}")
    }

    pub fn new(
        change: &Change,
        before: Option<&RoutingPolicy>,
        desired: Option<&RoutingPolicy>,
        preview: &Preview,
        warnings: &[FieldError],
        expected: &ResourceVersions,
        canary: Option<&Canary>,
    ) -> Self {
        let diff = DiffLine::parse(&preview.diff());
        Self {
            action: if desired.is_some() { "update".into() } else { "delete".into() },
            summary: desired
                .map(policy::summary)
                .unwrap_or_else(|| "no routing policy: round-robin over all pods".into()),
            change_summary: change.summary.clone(),
            warnings: warnings.iter().map(|w| format!("{}: {}", w.field, w.message)).collect(),
            diff,
            objects_yaml: preview.after.to_yaml(),
            owned: preview.owned.iter().map(crate::change::gitops::OwnedObject::message).collect(),
            for_git_only: false,
            policy_json: desired.and_then(|p| serde_json::to_string(p).ok()).unwrap_or_default(),
            bar_sets: vec![
                BarSet::of("preview-bars-before", "Before", before, canary),
                BarSet::of("preview-bars-after", "After", desired, canary),
            ],
            rv_vs: expected.virtual_service.clone().unwrap_or_default(),
            rv_dr: expected.destination_rule.clone().unwrap_or_default(),
            rv_hr: expected.http_route.clone().unwrap_or_default(),
        }
    }
}

impl AmbiguousView {
    fn new(host: &str, ambiguous: &Ambiguous) -> Self {
        let found = &ambiguous.objects;
        let roots = found.virtual_services.iter().map(|vs| ("VirtualService", vs));
        let delegates = found.delegates.iter().map(|vs| ("delegate VirtualService", vs));
        let mut objects: Vec<RoutingObjectView> =
            roots.chain(delegates).map(|(role, vs)| virtual_service_view(host, role, vs)).collect();
        objects.extend(found.destination_rules.iter().map(|dr| {
            let subsets = RoutingPolicy::from_istio(host, None, Some(dr)).map(|p| p.subsets).unwrap_or_default();
            let names: Vec<&str> = subsets.iter().map(|s| s.name.as_str()).collect();
            RoutingObjectView {
                kind: "DestinationRule",
                name: dr.metadata.name.clone().unwrap_or_default(),
                role: "DestinationRule".into(),
                words: format!("subsets: {}", if names.is_empty() { "none".into() } else { names.join(", ") }),
                yaml: yaml_of(dr),
            }
        }));
        Self { reason: ambiguous.reason.clone(), objects }
    }
}

/// A VirtualService in words: its hosts and gateways, its rules for this host, and what
/// else it does (delegation, other hosts' routes).
fn virtual_service_view(host: &str, role: &str, vs: &VirtualService) -> RoutingObjectView {
    let mut words = Vec::new();
    if let Some(hosts) = vs.spec.hosts.as_ref().filter(|h| !h.is_empty()) {
        words.push(format!("hosts {}", hosts.join(", ")));
    }
    if let Some(gateways) = &vs.spec.gateways {
        words.push(format!("gateways {}", gateways.join(", ")));
    }
    match policy::extract(host, Some(vs), None) {
        Ok(extraction) => {
            if !extraction.policy.rules.is_empty() {
                words.push(policy::summary(&extraction.policy));
            }
            words.extend(delegations(vs));
            let foreign = extraction.kept_verbatim.iter().filter(|k| k.contains("spec.http[") && k.contains(": "));
            words.extend(foreign.filter(|k| !k.contains("delegate")).cloned());
        }
        Err(error) => words.push(format!("not understood: {error}")),
    }
    RoutingObjectView {
        kind: "VirtualService",
        name: vs.metadata.name.clone().unwrap_or_default(),
        role: role.to_owned(),
        words: words.join("; "),
        yaml: yaml_of(vs),
    }
}

/// `rule 2 delegates to reco-v1` for each delegating HTTP route.
fn delegations(vs: &VirtualService) -> Vec<String> {
    let routes = vs.spec.http.iter().flatten().enumerate();
    routes
        .filter_map(|(index, route)| {
            let delegate = route.other.get("delegate")?;
            let name = delegate.get("name").and_then(serde_json::Value::as_str).unwrap_or("?");
            let namespace = delegate.get("namespace").and_then(serde_json::Value::as_str);
            let at = namespace.map(|ns| format!(" in {ns}")).unwrap_or_default();
            Some(format!("rule {} delegates to {name}{at}", index + 1))
        })
        .collect()
}

fn yaml_of<T: serde::Serialize>(object: &T) -> String {
    let value = serde_json::to_value(object).unwrap_or_default();
    documents::to_yaml(&crate::cluster::without_server_fields(value))
}

impl TestResultView {
    pub fn new(policy: &RoutingPolicy, evaluation: policy::Evaluation, headers: String, source: String) -> Self {
        let matched = evaluation.rule.map(|index| {
            let rule = RoutingPolicy { rules: vec![policy.rules[index].clone()], ..policy.clone() };
            format!("rule {}: {}", index + 1, policy::summary(&rule))
        });
        Self { headers, matched, why: evaluation.why, shares: evaluation.shares, source, no_route: evaluation.no_route }
    }
}
