-- Changes held for a second person's approval (src/audit/proposals.rs): the planned change
-- as the change path will apply it, and the resourceVersions it was planned against. The
-- audit chain records the proposal, its approval or rejection, and the outcome; this table
-- holds what is needed to apply it and where it stands.
CREATE TABLE proposals (
    id              INTEGER PRIMARY KEY,
    created_ms      INTEGER NOT NULL,
    expires_ms      INTEGER NOT NULL,
    proposer        TEXT    NOT NULL,
    proposer_groups TEXT    NOT NULL,
    source          TEXT    NOT NULL,
    namespace       TEXT    NOT NULL,
    host            TEXT,
    action          TEXT    NOT NULL,
    summary         TEXT    NOT NULL,
    change          TEXT    NOT NULL,
    diff            TEXT    NOT NULL,
    audit_id        INTEGER NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('open', 'applied', 'rejected', 'stale', 'failed')),
    decided_by      TEXT,
    decided_ms      INTEGER,
    reason          TEXT,
    outcome_audit_id INTEGER
);
CREATE INDEX proposals_open ON proposals (namespace, id) WHERE status = 'open';
