//! The canary page of a host: plan and progress, configured split, the buttons the user may
//! press, and this canary's history from the audit log.
use std::time::Duration;

use askama::Template;
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use crate::audit::Entry;
use crate::authz::{Actor, Permission};
use crate::change::ChangeError;
use crate::change::canary;
use crate::pictures::bars::BarSet;
use crate::pictures::sparkline::{Limit, Measure, Sparkline, sparkline};
use crate::pictures::steps::StepStrip;
use crate::policy::RoutingPolicy;
use crate::policy::canary::{Canary, DEFAULT_STEPS};
use crate::problem::FieldProblem;
use crate::traffic::{StepReach, Thresholds};

use super::route_view::DiffLine;
use super::sync_panel::SyncPanel;
use crate::change::rollout::Step;
use crate::web::error::AppError;
use crate::web::extract::{Asked, Htmx, ManagedHost, ManagedNamespace};
use crate::web::identity::Identity;
use crate::web::layout::Layout;
use crate::web::state::AppState;
use crate::web::view::ChangeQuery;

const HISTORY: u32 = 50;

#[derive(Template)]
#[template(path = "canary.html")]
struct CanaryPage {
    layout: Layout,
    namespace: String,
    host: String,
    allowed: bool,
    canary: Option<Canary>,
    /// The canary's step plan as a picture.
    strip: Option<StepStrip>,
    /// With Prometheus: the canary's success rate and p99 against its thresholds.
    sparklines: Vec<Sparkline>,
    /// A canary is progressing or paused (no new one may start).
    running: bool,
    subsets: Vec<String>,
    default_steps: String,
    /// The defaults the auto-advance fields show.
    default_thresholds: Thresholds,
    /// Auto-advance is on but nothing can measure: no `--prometheus-url`.
    analysis_without_prometheus: bool,
    /// Prometheus is configured, so a new canary may auto-advance (else the start form's
    /// box is unticked and disabled, and says why).
    can_auto_advance: bool,
    /// No canary now: why, in words consistent with the history below.
    no_canary: String,
    stable_name: String,
    canary_name: String,
    history: std::sync::Arc<Vec<Entry>>,
    observed: Observed,
    notice: Option<String>,
    error: Option<String>,
    /// After a change: how far it got to the proxies.
    sync: Option<SyncPanel>,
    /// A start's preview, on a page posted without JavaScript.
    preview: Option<StartPreview>,
    /// Whether every proxy has the current step, and when auto-advance may judge it.
    step_reach: Option<String>,
}

/// A canary start as the API server's dry run has it, with the form that starts it.
#[derive(Template)]
#[template(path = "partials/canary_preview.html")]
pub struct StartPreview {
    namespace: String,
    host: String,
    csrf_token: String,
    summary: String,
    /// The bars before and after, the rules that carry the canary marked.
    bar_sets: Vec<BarSet>,
    diff: Vec<DiffLine>,
    /// What was typed, sent again by the Start button.
    form: StartForm,
}

#[derive(Deserialize, Clone)]
pub struct StartForm {
    /// Set by the Preview button: dry-run the start and show it instead of starting.
    #[serde(default)]
    preview: Option<String>,
    stable: String,
    canary: String,
    #[serde(default)]
    steps: String,
    /// The auto-advance checkbox and its thresholds (text, so that a typo is our message,
    /// not a rejected form).
    auto_advance: Option<String>,
    #[serde(default)]
    min_success_percent: String,
    #[serde(default)]
    max_p99_ms: String,
    #[serde(default)]
    min_requests: String,
    #[serde(default)]
    dwell_seconds: String,
    #[serde(default)]
    window_seconds: String,
}

impl StartForm {
    fn steps(&self) -> Result<Vec<u32>, String> {
        self.steps
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|step| step.parse::<u32>().map_err(|_| step))
            .collect::<Result<_, _>>()
            .map_err(|step| {
                format!(
                    "steps: {step:?} is not a whole number; give whole numbers separated by commas, e.g. 10, 25, 100"
                )
            })
    }

    /// The auto-advance thresholds when the box is ticked; empty fields take the defaults.
    /// Without Prometheus (`measured` false) nothing could judge them: refused, as the form
    /// offers no box then.
    fn analysis(&self, measured: bool) -> Result<Option<Thresholds>, String> {
        if self.auto_advance.is_none() {
            return Ok(None);
        }
        if !measured {
            return Err(NO_PROMETHEUS.to_owned());
        }
        let defaults = Thresholds::default();
        let seconds =
            |text: &str, field, default: Duration| number(text, field, default.as_secs()).map(Duration::from_secs);
        Ok(Some(Thresholds {
            min_success_percent: number(
                &self.min_success_percent,
                "minimum success rate",
                defaults.min_success_percent,
            )?,
            max_p99_ms: number(&self.max_p99_ms, "maximum p99", defaults.max_p99_ms)?,
            min_requests: number(&self.min_requests, "minimum requests", defaults.min_requests)?,
            dwell: seconds(&self.dwell_seconds, "dwell", defaults.dwell)?,
            window: seconds(&self.window_seconds, "window", defaults.window)?,
        }))
    }
}

const NO_PROMETHEUS: &str = "auto-advance needs Istio's metrics, and signalbox has no --prometheus-url: promote each step \
                             yourself, or start signalbox with --prometheus-url";

/// What the page says when the host has no canary now, consistent with the canary history
/// below it (`history`, newest first): none has run; or the last one was reverted (by the
/// newest of `reverts` that undid one of its steps); or which step was the last recorded.
fn no_canary(host: &str, history: &[Entry], reverts: &[Entry]) -> String {
    let applied = |entry: &&Entry| entry.outcome == crate::audit::Outcome::Applied;
    let Some(last) = history.iter().find(applied) else {
        return format!("No canary has run for {host}.");
    };
    let undid_a_step = |revert: &&Entry| revert.reverts.is_some_and(|id| history.iter().any(|step| step.id == id));
    if let Some(revert) = reverts.iter().filter(applied).filter(|r| r.id > last.id).find(undid_a_step) {
        return format!(
            "No canary is running for {host}: the last one was reverted by {} at {} (audit #{}, {}); its steps are in \
             the history below.",
            revert.actor,
            revert.time(),
            revert.id,
            revert.summary
        );
    }
    format!(
        "No canary is running for {host}: the VirtualService no longer records one. The last canary step, at {}, was: \
         {}.",
        last.time(),
        last.summary
    )
}

fn number<T: std::str::FromStr>(text: &str, field: &str, default: T) -> Result<T, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(default);
    }
    text.parse().map_err(|_| format!("{field}: {text:?} is not a number"))
}

#[derive(Deserialize)]
pub struct StepForm {
    #[serde(default)]
    step: Option<usize>,
    #[serde(default)]
    full: Option<String>,
    /// The Finish form's "scale the old version to 0" box.
    #[serde(default)]
    scale_down: Option<String>,
}

/// How long a window the observed split covers.
const OBSERVED_WINDOW: Duration = Duration::from_secs(60);

/// What Istio's metrics say about each version, next to the configured split.
pub enum Observed {
    /// No `--prometheus-url`.
    NotConfigured,
    Unreachable(String),
    /// (subset, version label, share %, req/s, success %, p99 ms), per subset of the host.
    Versions(Vec<ObservedVersion>),
}

pub struct ObservedVersion {
    pub subset: String,
    pub share: String,
    pub rate: String,
    pub success: String,
    pub p99: String,
}

async fn observe(state: &AppState, namespace: &str, host: &str, policy: &RoutingPolicy) -> Observed {
    let Some(prometheus) = &state.prometheus else { return Observed::NotConfigured };
    let report = match prometheus.observe(namespace, host, OBSERVED_WINDOW).await {
        Ok(report) => report,
        Err(error) => return Observed::Unreachable(error.to_string()),
    };
    let versions = policy
        .subsets
        .iter()
        .map(|subset| {
            let traffic = subset.labels.get("version").and_then(|version| report.version(version));
            let format = |value: Option<f64>, unit: &str| value.map_or("–".to_owned(), |v| format!("{v:.1}{unit}"));
            ObservedVersion {
                subset: policy.display_name(&subset.name),
                share: format(traffic.map(|t| t.share_percent), "%"),
                rate: format(traffic.map(|t| t.requests_per_second), " req/s"),
                success: format(traffic.and_then(|t| t.success_percent), "%"),
                p99: format(traffic.and_then(|t| t.p99_ms), " ms"),
            }
        })
        .collect();
    Observed::Versions(versions)
}

/// How far back the canary's sparklines reach.
const HISTORY_SPAN: Duration = Duration::from_secs(300);

/// The canary version's success rate and p99 over [`HISTORY_SPAN`], each point measured
/// like the analysis does (its window, or the default one), against its thresholds. None
/// without Prometheus or while it does not answer (the observed table says why).
async fn canary_sparklines(
    state: &AppState,
    namespace: &str,
    host: &str,
    policy: &RoutingPolicy,
    canary: &Canary,
) -> Vec<Sparkline> {
    let Some(prometheus) = &state.prometheus else { return Vec::new() };
    let Some(version) = policy.subset(&canary.canary).and_then(|s| s.labels.get("version")) else { return Vec::new() };
    let thresholds = canary.analysis.clone().unwrap_or_default();
    let Ok(history) = prometheus.history(namespace, host, version, thresholds.window, HISTORY_SPAN).await else {
        return Vec::new();
    };
    let span = format!("last {} min", HISTORY_SPAN.as_secs() / 60);
    let success =
        Measure { name: "success rate", unit: "%", decimals: 2, limit: Limit::AtLeast(thresholds.min_success_percent) };
    let p99 = Measure { name: "p99 latency", unit: " ms", decimals: 1, limit: Limit::AtMost(thresholds.max_p99_ms) };
    vec![
        sparkline(&success, version, &span, &history.success_percent),
        sparkline(&p99, version, &span, &history.p99_ms),
    ]
}

pub async fn page(
    State(state): State<AppState>,
    Identity(actor): Identity,
    ManagedHost { namespace, host }: ManagedHost,
    Query(notice): Query<ChangeQuery>,
) -> Result<Response, AppError> {
    let notice = state.change_notice(&actor, notice.change).await?;
    let mut page = view(&state, &actor, &namespace, &host, notice, None).await?;
    if page.notice.is_some() {
        page.sync = Some(super::proxy_sync::panel(&state, &actor, &namespace, &host).await);
    }
    Ok(Html(page.render()?).into_response())
}

async fn view(
    state: &AppState,
    actor: &Actor,
    namespace: &str,
    host: &str,
    notice: Option<String>,
    error: Option<String>,
) -> Result<CanaryPage, AppError> {
    let live = state.reads.cached_routing(namespace, host);
    let policy = live.policy(host).unwrap_or_else(|_| RoutingPolicy::new(host));
    let current = canary::current(&live);
    let name = |subset: Option<&String>| subset.map(|s| policy.display_name(s)).unwrap_or_default();
    let history = state.audit.for_object(namespace, "VirtualService", host, "canary.", HISTORY).await?;
    Ok(CanaryPage {
        layout: Layout::new(state, actor, Some(namespace)),
        namespace: namespace.to_owned(),
        host: host.to_owned(),
        allowed: state.changes.authorizer().allows(actor, Permission::Canary, namespace, Some(host)),
        stable_name: name(current.as_ref().map(|c| &c.stable)),
        canary_name: name(current.as_ref().map(|c| &c.canary)),
        subsets: policy.subsets.iter().map(|s| s.name.clone()).collect(),
        default_steps: DEFAULT_STEPS.map(|s| s.to_string()).join(", "),
        default_thresholds: Thresholds::default(),
        analysis_without_prometheus: state.prometheus.is_none()
            && current.as_ref().is_some_and(|c| c.analysis.is_some() && c.is_active()),
        running: current.as_ref().is_some_and(Canary::is_active),
        strip: current.as_ref().map(|c| StepStrip::of(c, &name(Some(&c.canary)))),
        sparklines: match &current {
            Some(c) => canary_sparklines(state, namespace, host, &policy, c).await,
            None => Vec::new(),
        },
        no_canary: match &current {
            None if !history.is_empty() => {
                let reverts = state.audit.for_object(namespace, "VirtualService", host, "revert", HISTORY).await?;
                no_canary(host, &history, &reverts)
            }
            _ => no_canary(host, &[], &[]),
        },
        can_auto_advance: state.prometheus.is_some(),
        step_reach: match current.as_ref().filter(|c| c.is_automatic()) {
            Some(canary) => {
                let reach = reach_in_words(canary, &state.rollouts.step_reach(namespace, host).await);
                let dwell = state.rollouts.dwell(namespace, host).filter(|dwell| dwell.step == canary.step);
                Some(match dwell {
                    Some(dwell) => {
                        format!("{reach} Healthy so far: dwell {}/{} s.", dwell.held.min(dwell.of), dwell.of)
                    }
                    None => reach,
                })
            }
            None => None,
        },
        canary: current,
        history,
        observed: observe(state, namespace, host, &policy).await,
        notice,
        error,
        sync: None,
        preview: None,
    })
}

pub async fn start(
    State(state): State<AppState>,
    Asked(origin): Asked,
    htmx: Htmx,
    ManagedHost { namespace, host }: ManagedHost,
    Form(form): Form<StartForm>,
) -> Result<Response, AppError> {
    let (steps, analysis) = match (form.steps(), form.analysis(state.prometheus.is_some())) {
        (Ok(steps), Ok(analysis)) => (steps, analysis),
        (Err(message), _) | (_, Err(message)) => {
            let field = if message.starts_with("steps") { "steps" } else { "analysis" };
            let problem = FieldProblem::new(field, message.clone());
            return match state.rollouts.refuse_start(&origin, &namespace, &host, problem).await {
                ChangeError::Invalid(_) => {
                    let status = StatusCode::UNPROCESSABLE_ENTITY;
                    refused(&state, &origin.actor, htmx, &namespace, &host, status, message).await
                }
                other => Err(AppError::from(other)),
            };
        }
    };
    let step = Step::Start { stable: form.stable.clone(), canary: form.canary.clone(), steps, analysis };
    if form.preview.is_some() {
        return preview_start(&state, &origin, htmx, (&namespace, &host), step, form).await;
    }
    transition(&state, origin, htmx, &namespace, &host, step).await
}

/// The start's preview: the partial for htmx, else the whole page with it. A refusal is
/// shown where the preview would be, and (a dry run) not audited.
async fn preview_start(
    state: &AppState,
    origin: &crate::change::Origin,
    htmx: Htmx,
    (namespace, host): (&str, &str),
    step: Step,
    form: StartForm,
) -> Result<Response, AppError> {
    let previewed = state.rollouts.preview(origin, namespace, host, &step).await.map_err(AppError::from);
    let planned = match previewed {
        Ok(planned) => planned,
        Err(error @ (AppError::Conflict(_) | AppError::Invalid(_))) => {
            return refused(state, &origin.actor, htmx, namespace, host, error.status(), error.to_string()).await;
        }
        Err(other) => return Err(other),
    };
    let shown = StartPreview {
        namespace: namespace.to_owned(),
        host: host.to_owned(),
        csrf_token: state.csrf.token_for(&origin.actor.name),
        summary: planned.summary,
        bar_sets: vec![
            BarSet::of("canary-bars-before", "Before", Some(&planned.before), None),
            BarSet::of("canary-bars-after", "After", Some(&planned.after), Some(&planned.canary)),
        ],
        diff: DiffLine::parse(&planned.preview.diff()),
        form,
    };
    if htmx.0 {
        return Ok(Html(shown.render()?).into_response());
    }
    let mut page = view(state, &origin.actor, namespace, host, None, None).await?;
    page.preview = Some(shown);
    Ok(Html(page.render()?).into_response())
}

pub async fn step(
    State(state): State<AppState>,
    Asked(origin): Asked,
    htmx: Htmx,
    ManagedHost { namespace, host }: ManagedHost,
    Path((_, _, name)): Path<(String, String, String)>,
    Form(form): Form<StepForm>,
) -> Result<Response, AppError> {
    let step = Step::named(&name, form.full.is_some(), form.step, form.scale_down.is_some())
        .ok_or_else(|| AppError::NotFound(format!("no canary operation {name:?}")))?;
    transition(&state, origin, htmx, &namespace, &host, step).await
}

async fn transition(
    state: &AppState,
    origin: crate::change::Origin,
    htmx: Htmx,
    namespace: &str,
    host: &str,
    step: Step,
) -> Result<Response, AppError> {
    let actor = &origin.actor.clone();
    let ran = state.rollouts.run(origin, namespace, host, step).await;
    match ran.map_err(AppError::from) {
        Ok((_, audit_id)) => {
            let target = format!("/ns/{namespace}/canaries/{host}?change={audit_id}");
            Ok(htmx.redirect(&target))
        }
        Err(error @ (AppError::Conflict(_) | AppError::Invalid(_))) => {
            refused(state, actor, htmx, namespace, host, error.status(), error.to_string()).await
        }
        Err(other) => Err(other),
    }
}

/// `Step 2 reached every proxy at 12:03:05 UTC; auto-advance judges it on metrics from
/// 12:04:05 UTC`, or why it waits.
fn reach_in_words(canary: &Canary, reach: &StepReach) -> String {
    let step = canary.step + 1;
    let window = canary.analysis.as_ref().map_or(Duration::ZERO, |a| a.window);
    match reach {
        StepReach::Reached(at) => {
            let from = at.checked_add(window).unwrap_or(*at);
            format!(
                "Step {step} reached every proxy at {} UTC; auto-advance judges it on metrics from {} UTC, a full \
                 window of its own, and counts the dwell from when it reached them.",
                at.strftime("%H:%M:%S"),
                from.strftime("%H:%M:%S")
            )
        }
        StepReach::Pending(progress) => format!(
            "Step {step} has not reached every proxy yet ({progress}): auto-advance waits for them (at most {} s) \
             before judging it, so that metrics of the previous weights never promote it.",
            crate::autopilot::STEP_REACH_BOUND.as_secs()
        ),
        StepReach::Unknown(why) => format!(
            "Whether every proxy has step {step} is not known ({why}): auto-advance judges it {} s after it began.",
            crate::autopilot::STEP_REACH_BOUND.as_secs()
        ),
    }
}

#[derive(Template)]
#[template(path = "partials/form_error.html")]
struct FormError {
    message: String,
}

/// A refused form: htmx gets the message alone, for the form's own error slot; a plain
/// form post gets the whole page with the message on top.
async fn refused(
    state: &AppState,
    actor: &Actor,
    Htmx(htmx): Htmx,
    namespace: &str,
    host: &str,
    status: StatusCode,
    message: String,
) -> Result<Response, AppError> {
    let html = if htmx {
        FormError { message }.render()?
    } else {
        view(state, actor, namespace, host, None, Some(message)).await?.render()?
    };
    Ok((status, Html(html)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(auto_advance: bool, min_requests: &str, dwell_seconds: &str) -> StartForm {
        StartForm {
            preview: None,
            stable: "version-v1".into(),
            canary: "version-v2".into(),
            steps: "10, 25,100".into(),
            auto_advance: auto_advance.then(|| "on".into()),
            min_success_percent: String::new(),
            max_p99_ms: " 250 ".into(),
            min_requests: min_requests.into(),
            dwell_seconds: dwell_seconds.into(),
            window_seconds: String::new(),
        }
    }

    #[test]
    fn the_start_form_reads_steps_and_auto_advance_with_defaults_for_empty_fields() {
        assert_eq!(form(false, "", "").steps(), Ok(vec![10, 25, 100]));
        assert_eq!(form(false, "5", "x").analysis(true), Ok(None), "unticked: the fields are ignored");
        let thresholds = form(true, "5", "").analysis(true).unwrap().unwrap();
        assert_eq!(
            thresholds,
            Thresholds { max_p99_ms: 250.0, min_requests: 5, ..Thresholds::default() },
            "empty fields take the defaults"
        );
    }

    #[test]
    fn a_typo_in_the_start_form_names_its_field() {
        assert_eq!(form(true, "5", "ten").analysis(true), Err("dwell: \"ten\" is not a number".to_owned()));
        assert_eq!(form(true, "-1", "").analysis(true), Err("minimum requests: \"-1\" is not a number".to_owned()));
        let steps = StartForm { steps: "10, x".into(), ..form(false, "", "") };
        assert!(steps.steps().unwrap_err().starts_with("steps:"));
    }

    #[test]
    fn without_prometheus_a_ticked_auto_advance_is_refused() {
        assert_eq!(form(false, "", "").analysis(false), Ok(None));
        assert_eq!(form(true, "", "").analysis(false), Err(NO_PROMETHEUS.to_owned()));
    }

    fn entry(id: i64, action: &str, summary: &str, reverts: Option<i64>) -> Entry {
        Entry {
            id,
            time_ms: 1_700_000_000_000 + id * 1000,
            actor: "alice".into(),
            groups: Vec::new(),
            source: crate::audit::Source::Api,
            action: action.into(),
            namespace: "tutorial".into(),
            kind: "VirtualService".into(),
            name: "recommendation".into(),
            summary: summary.into(),
            before: None,
            after: None,
            operations: serde_json::Value::Null,
            outcome: crate::audit::Outcome::Applied,
            error: None,
            request_id: None,
            reverts,
            approved_by: None,
            propagation: None,
        }
    }

    #[test]
    fn without_a_canary_the_page_says_what_the_history_shows() {
        assert_eq!(no_canary("recommendation", &[], &[]), "No canary has run for recommendation.");
        let history =
            [entry(3, "canary.promote", "v2 progressing (v1 50% · v2 50%)", None), entry(2, "canary.start", "s", None)];
        let revert = entry(4, "revert", "revert #3: v2 progressing", Some(3));
        let words = no_canary("recommendation", &history, &[revert]);
        assert!(
            words.starts_with("No canary is running for recommendation: the last one was reverted by alice"),
            "{words}"
        );
        assert!(words.contains("audit #4"), "{words}");
        let words = no_canary("recommendation", &history, &[]);
        assert!(words.starts_with("No canary is running for recommendation:"), "{words}");
        assert!(words.contains("v2 progressing (v1 50% · v2 50%)"), "{words}");
    }
}

#[derive(Template)]
#[template(path = "canaries_index.html")]
struct CanariesIndex {
    layout: Layout,
    namespace: String,
    /// Each service the actor may view, and its canary in words.
    hosts: Vec<(String, String)>,
}

/// `/ns/{ns}/canaries`: every service and its canary, from the watch caches.
pub async fn index(
    State(state): State<AppState>,
    Identity(actor): Identity,
    ManagedNamespace(namespace): ManagedNamespace,
) -> Result<Response, AppError> {
    let hosts = super::overview::hosts_in_words(&state, &actor, &namespace, |row| {
        let current = canary::current(&state.reads.cached_routing(&namespace, &row.facts.service.app));
        current.map_or_else(|| "no canary".to_owned(), |c| in_words(&c))
    });
    super::render(&CanariesIndex { layout: Layout::new(&state, &actor, Some(&namespace)), namespace, hosts })
}

/// "v2 at 25% (step 2 of 4), progressing".
fn in_words(canary: &Canary) -> String {
    let (state, step, steps) = (canary.state_name(), canary.step + 1, canary.steps.len());
    format!("{} at {}% (step {step} of {steps}), {state}", canary.canary, canary.weight())
}
