//! Where the audit chain's anchor lives: an annotation on a ConfigMap in signalbox's own
//! namespace (`audit::anchor` explains why and what is compared). The audit database's
//! editor (whoever can write the volume) cannot rewrite it; signalbox's ServiceAccount may
//! only `get` and `patch` that one ConfigMap (deploy/base/rbac-audit-anchor.yaml), and with
//! a key the anchor is HMAC-signed, so rewriting it unnoticed also takes the key.
//!
//! The writer never moves an anchor the database contradicts (a shorter or rewritten
//! chain, an archive it does not know): overwriting it would erase the evidence. Nor does
//! it write one where the anchor was removed: the database records that the log was
//! anchored (`audit_anchorings`), so a missing anchor is a contradiction too, or whoever may
//! edit ConfigMaps there could have signalbox anchor (and sign) an edited database by
//! deleting the annotation. Re-anchoring is the operator's explicit, audited
//! `signalbox audit anchor --reset` ([`AuditAnchor::reset`]).
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, Patch, PatchParams};

use crate::audit::{
    Anchor, AnchorKey, AnchorReading, ArchiveWitness, AuditError, AuditStore, NewEntry, Outcome, Position, Source,
    anchor,
};

/// The ConfigMap's default name.
pub const DEFAULT_NAME: &str = "signalbox-audit-anchor";
/// The annotation holding the anchor, as JSON.
pub const ANNOTATION: &str = "signalbox.io/audit-anchor";
/// Its own field manager, so server-side apply of the anchor never touches other fields.
const FIELD_MANAGER: &str = "signalbox-audit-anchor";
/// Who writes a log's first anchor.
const SYSTEM_ACTOR: &str = "system:signalbox";
/// The audit action of `signalbox audit anchor --reset`.
pub const RESET_ACTION: &str = "audit.anchor.reset";

#[derive(Debug, thiserror::Error)]
pub enum AnchorError {
    #[error("cannot read the anchor: {0}")]
    Unreachable(String),
    #[error("cannot write the anchor: {0}")]
    Write(#[source] kube::Error),
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// Moving the anchor would hide these.
    #[error("the anchor is left as it is, because the audit database contradicts it: {0}")]
    Contradicted(String),
}

/// The anchor ConfigMap and the key that signs it.
#[derive(Clone)]
pub struct AuditAnchor {
    api: Api<ConfigMap>,
    namespace: String,
    name: String,
    key: Option<Arc<AnchorKey>>,
    /// One read-compare-write at a time (the writer task, the archiver, shutdown): a write
    /// from a stale read would set back an archive boundary just anchored.
    turn: Arc<tokio::sync::Mutex<()>>,
}

impl AuditAnchor {
    pub fn new(client: Client, namespace: &str, name: &str, key: Option<AnchorKey>) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            key: key.map(Arc::new),
            turn: Arc::default(),
        }
    }

    /// Where the anchor is, in words.
    pub fn location(&self) -> String {
        format!("ConfigMap {}/{} (annotation {ANNOTATION})", self.namespace, self.name)
    }

    pub fn key(&self) -> Option<&AnchorKey> {
        self.key.as_deref()
    }

    /// What the ConfigMap holds now.
    pub async fn read(&self) -> AnchorReading {
        let config_map = match self.api.get_opt(&self.name).await {
            Ok(found) => found,
            Err(error) => return AnchorReading::Unreachable(error.to_string()),
        };
        let text = config_map.and_then(|c| c.metadata.annotations).and_then(|mut a| a.remove(ANNOTATION));
        match text {
            None => AnchorReading::Missing,
            Some(text) => {
                serde_json::from_str(&text).map_or_else(|e| AnchorReading::Garbled(e.to_string()), AnchorReading::Found)
            }
        }
    }

    /// Verifies `store` in full and compares it with the anchor (the verify API, the
    /// periodic check).
    pub async fn verify(&self, store: &AuditStore) -> Result<crate::audit::VerifyReport, AuditError> {
        let report = store.verify().await?;
        store.compare_with_anchor(report, &self.read().await, &self.location(), self.key()).await
    }

    /// Anchors the database's newest record, with `archived` (a boundary the archiver is
    /// about to write) or else the anchored archive boundary. Writes nothing when the anchor
    /// already says so, and refuses when the anchor there contradicts the database.
    pub async fn advance(&self, store: &AuditStore, archived: Option<Position>) -> Result<Anchor, AnchorError> {
        let _turn = self.turn.lock().await;
        let reading = self.read().await;
        let existing = match &reading {
            AnchorReading::Found(anchor) => Some(anchor),
            AnchorReading::Missing | AnchorReading::Off => None,
            AnchorReading::Unreachable(why) => return Err(AnchorError::Unreachable(why.clone())),
            AnchorReading::Garbled(why) => return Err(AnchorError::Contradicted(format!("unreadable anchor: {why}"))),
        };
        let state = store.chain_state(existing).await?;
        if existing.is_some() {
            let (problems, _) = anchor::compare(&reading, &self.location(), self.key(), &state);
            if !problems.is_empty() {
                return Err(AnchorError::Contradicted(problems.join("; ")));
            }
        } else if state.anchored.is_some() {
            // Removed: writing one now would anchor whatever the database holds.
            return Err(AnchorError::Contradicted(anchor::removed(&self.location(), &state)));
        }
        // A first anchor trusts the database as it is (an existing log gets anchored from now on).
        if existing.is_none() && state.head.seq > 0 {
            tracing::warn!(
                anchor = %self.location(),
                seq = state.head.seq,
                "no audit anchor yet: anchoring the log as it is now (the database records no earlier anchor)"
            );
        }
        let archived = archived.or_else(|| existing.map(Anchor::archived)).unwrap_or_else(|| state.archived.clone());
        let anchor = Anchor::new(&state.head, &archived, self.key());
        if let Some(existing) = existing.filter(|e| e.same_positions(&anchor)) {
            self.note_anchored(store, &state, existing).await?;
            return Ok(existing.clone());
        }
        self.write(&anchor).await?;
        self.note_anchored(store, &state, &anchor).await?;
        Ok(anchor)
    }

    /// Records in the database that the log is anchored, the first time (a log anchored by
    /// a signalbox older than `audit_anchorings` is recorded when its anchor is next seen).
    async fn note_anchored(
        &self,
        store: &AuditStore,
        state: &crate::audit::ChainState,
        anchor: &Anchor,
    ) -> Result<(), AuditError> {
        if state.anchored.is_some() {
            return Ok(());
        }
        store.record_anchoring(&self.location(), &anchor.head(), SYSTEM_ACTOR, false).await
    }

    /// `signalbox audit anchor --reset`: the operator's explicit re-anchoring, after the
    /// anchor was removed or contradicts the database (once the evidence was looked at).
    /// Records an audit entry (`audit.anchor.reset`, by `actor`, with the anchor it replaces
    /// as `before`), anchors the chain head including that entry, whatever is there, and
    /// records the reset in `audit_anchorings`.
    pub async fn reset(&self, store: &AuditStore, actor: &str) -> Result<Anchor, AnchorError> {
        let _turn = self.turn.lock().await;
        let (before, was) = match self.read().await {
            AnchorReading::Unreachable(why) => return Err(AnchorError::Unreachable(why)),
            AnchorReading::Found(anchor) => {
                let was = format!("it named record {} (written {})", anchor.seq, anchor.time);
                (serde_json::to_value(&anchor).ok(), was)
            }
            AnchorReading::Garbled(why) => (None, format!("it held no anchor ({why})")),
            AnchorReading::Missing | AnchorReading::Off => (None, "there was none".to_owned()),
        };
        let entry = NewEntry {
            actor: actor.to_owned(),
            groups: Vec::new(),
            source: Source::System,
            action: RESET_ACTION.to_owned(),
            namespace: self.namespace.clone(),
            kind: "ConfigMap".to_owned(),
            name: self.name.clone(),
            summary: format!("{actor} reset the audit anchor at {}: {was}", self.location()),
            before,
            after: None,
            operations: serde_json::json!([]),
            outcome: Outcome::Pending,
            error: None,
            request_id: None,
            reverts: None,
        };
        let id = store.record(&entry).await?;
        let state = store.chain_state(None).await?;
        let archived = state.archived.clone();
        let anchor = Anchor::new(&state.head, &archived, self.key());
        if let Err(error) = self.write(&anchor).await {
            store.resolve(id, Outcome::Failed, None, Some(&error.to_string())).await?;
            return Err(error);
        }
        store.record_anchoring(&self.location(), &anchor.head(), actor, true).await?;
        store.resolve(id, Outcome::Applied, serde_json::to_value(&anchor).ok().as_ref(), None).await?;
        tracing::warn!(%actor, anchor = %self.location(), seq = anchor.seq, "the audit anchor was reset");
        Ok(anchor)
    }

    /// Server-side apply of the annotation alone (creates the ConfigMap when RBAC allows;
    /// deploy/base ships it, so signalbox needs no `create`).
    async fn write(&self, anchor: &Anchor) -> Result<(), AnchorError> {
        let text = serde_json::to_string(anchor).unwrap_or_default();
        let patch = serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": self.name, "namespace": self.namespace, "annotations": {ANNOTATION: text}},
        });
        let params = PatchParams::apply(FIELD_MANAGER).force();
        self.api.patch(&self.name, &params, &Patch::Apply(patch)).await.map(drop).map_err(AnchorError::Write)
    }

    /// Anchors the chain head now, then whenever `every_records` records were committed, and
    /// at least every `every` while records come in (idle, it only reads the anchor).
    pub fn spawn_writer(&self, store: AuditStore, every_records: u64, every: Duration) -> tokio::task::JoinHandle<()> {
        let anchor = self.clone();
        tokio::spawn(async move {
            let mut committed = store.committed();
            let mut anchored = 0;
            loop {
                match anchor.advance(&store, None).await {
                    Ok(written) => anchored = written.seq,
                    Err(error) => {
                        tracing::error!(%error, anchor = %anchor.location(), "the audit chain is not anchored")
                    }
                }
                let due = anchored.saturating_add(i64::try_from(every_records).unwrap_or(i64::MAX));
                if let Ok(Err(_)) = tokio::time::timeout(every, committed.wait_for(|seq| *seq >= due)).await {
                    return; // the audit store is gone
                }
            }
        })
    }
}

/// The archiver anchors a new archive boundary before it deletes anything.
impl ArchiveWitness for AuditAnchor {
    fn witness<'a>(
        &'a self,
        store: &'a AuditStore,
        through: Position,
    ) -> futures::future::BoxFuture<'a, Result<(), String>> {
        Box::pin(async move { self.advance(store, Some(through)).await.map(drop).map_err(|e| e.to_string()) })
    }
}

/// A client for reading the anchor from the command line: the kubeconfig (or in-cluster
/// configuration), with short timeouts so an unreachable cluster is reported quickly.
pub async fn client(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<Client> {
    let (mut config, _) = crate::cluster::load_config(kubeconfig).await?;
    config.connect_timeout = Some(Duration::from_secs(5));
    config.read_timeout = Some(Duration::from_secs(10));
    Ok(Client::try_from(config)?)
}
