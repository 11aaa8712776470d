-- When the proxies had a change (src/propagation): a follow-up record of an applied entry,
-- chained like resolutions and as append-only, written once istiod's sync status settled.
-- `summary` is the result in words ("reached 3/3 proxies in 0.4 s"); `detail` the per-proxy
-- report as JSON.
CREATE TABLE audit_propagations (
    entry_id  INTEGER PRIMARY KEY REFERENCES audit_entries (id),
    time_ms   INTEGER NOT NULL,
    summary   TEXT    NOT NULL,
    detail    TEXT,
    chain_seq INTEGER NOT NULL UNIQUE,
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL
);
CREATE TRIGGER audit_propagations_no_update BEFORE UPDATE ON audit_propagations
BEGIN
    SELECT RAISE(ABORT, 'audit entries are append-only');
END;
CREATE TRIGGER audit_propagations_no_delete BEFORE DELETE ON audit_propagations
WHEN (SELECT archiving FROM audit_archive_guard WHERE id = 1) <> 1
BEGIN
    SELECT RAISE(ABORT, 'audit entries are append-only');
END;

DROP VIEW audit_view;
CREATE VIEW audit_view AS
SELECT e.id, e.time_ms, e.actor, e.actor_groups, e.source, e.action, e.namespace, e.kind, e.name,
       e.summary, e.before_doc, e.operations, e.request_id, e.reverts,
       COALESCE(r.outcome, e.outcome) AS outcome,
       CASE WHEN r.entry_id IS NULL THEN e.after_doc ELSE r.after_doc END AS after_doc,
       CASE WHEN r.entry_id IS NULL THEN e.error ELSE r.error END AS error,
       p.summary AS propagation
FROM audit_entries e
LEFT JOIN audit_resolutions r ON r.entry_id = e.id
LEFT JOIN audit_propagations p ON p.entry_id = e.id;
