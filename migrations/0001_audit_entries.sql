-- The audit log: one row per attempted change, append-only.
CREATE TABLE audit_entries (
    id           INTEGER PRIMARY KEY,
    time_ms      INTEGER NOT NULL,
    actor        TEXT    NOT NULL,
    actor_groups TEXT    NOT NULL DEFAULT '[]',
    source       TEXT    NOT NULL CHECK (source IN ('ui', 'api', 'system', 'external')),
    action       TEXT    NOT NULL,
    namespace    TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    summary      TEXT    NOT NULL DEFAULT '',
    before_doc   TEXT,
    after_doc    TEXT,
    -- JSON array of the change's operations in order: {kind, namespace, name, apply: object|null}.
    operations   TEXT    NOT NULL DEFAULT '[]',
    outcome      TEXT    NOT NULL CHECK (outcome IN ('pending', 'applied', 'failed', 'denied')),
    error        TEXT,
    request_id   TEXT,
    reverts      INTEGER REFERENCES audit_entries (id)
);

CREATE INDEX audit_entries_by_time ON audit_entries (time_ms, id);
CREATE INDEX audit_entries_by_object ON audit_entries (namespace, kind, name, id);
CREATE INDEX audit_entries_by_actor ON audit_entries (actor, id);
CREATE INDEX audit_entries_pending ON audit_entries (id) WHERE outcome = 'pending';

-- Append-only: nothing deletes an entry, and only a pending entry may be resolved.
CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
BEGIN
    SELECT RAISE(ABORT, 'audit entries are append-only');
END;

CREATE TRIGGER audit_entries_resolve_pending_only BEFORE UPDATE ON audit_entries
WHEN OLD.outcome <> 'pending'
BEGIN
    SELECT RAISE(ABORT, 'only a pending audit entry can be resolved');
END;
