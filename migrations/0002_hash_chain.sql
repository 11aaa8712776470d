-- Tamper evidence: every record is chained by SHA-256 over the previous record's hash and
-- its own canonical content (see src/audit/chain.rs). Records are entries and the
-- resolutions of pending entries; both are strictly append-only, so a pending entry keeps
-- what it was written with and its outcome is a record of its own.
ALTER TABLE audit_entries ADD COLUMN chain_seq INTEGER;
ALTER TABLE audit_entries ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_entries ADD COLUMN hash TEXT;
CREATE UNIQUE INDEX audit_entries_by_chain ON audit_entries (chain_seq);

CREATE TABLE audit_resolutions (
    entry_id  INTEGER PRIMARY KEY REFERENCES audit_entries (id),
    time_ms   INTEGER NOT NULL,
    outcome   TEXT    NOT NULL CHECK (outcome IN ('applied', 'failed')),
    after_doc TEXT,
    error     TEXT,
    chain_seq INTEGER NOT NULL UNIQUE,
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL
);

-- The chain's last link, so an append reads one row.
CREATE TABLE audit_chain_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT    NOT NULL
);

-- Entries written before the chain existed are chained once, at startup, by the store;
-- after that no entry changes.
DROP TRIGGER audit_entries_resolve_pending_only;
CREATE TRIGGER audit_entries_chain_once BEFORE UPDATE ON audit_entries
WHEN OLD.hash IS NOT NULL
BEGIN
    SELECT RAISE(ABORT, 'audit entries are append-only');
END;
CREATE TRIGGER audit_resolutions_no_update BEFORE UPDATE ON audit_resolutions
BEGIN
    SELECT RAISE(ABORT, 'audit entries are append-only');
END;
CREATE TRIGGER audit_resolutions_no_delete BEFORE DELETE ON audit_resolutions
BEGIN
    SELECT RAISE(ABORT, 'audit entries are append-only');
END;

-- What readers see: each entry with its outcome, resolved or not.
CREATE VIEW audit_view AS
SELECT e.id, e.time_ms, e.actor, e.actor_groups, e.source, e.action, e.namespace, e.kind, e.name,
       e.summary, e.before_doc, e.operations, e.request_id, e.reverts,
       COALESCE(r.outcome, e.outcome) AS outcome,
       CASE WHEN r.entry_id IS NULL THEN e.after_doc ELSE r.after_doc END AS after_doc,
       CASE WHEN r.entry_id IS NULL THEN e.error ELSE r.error END AS error
FROM audit_entries e LEFT JOIN audit_resolutions r ON r.entry_id = e.id;
