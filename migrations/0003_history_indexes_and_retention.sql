-- History filters at a million entries: each filter column with the id, so "the newest
-- entries matching X" walks one index backwards instead of scanning the log.
CREATE INDEX audit_entries_by_name ON audit_entries (name, id);
CREATE INDEX audit_entries_by_namespace ON audit_entries (namespace, id);
CREATE INDEX audit_entries_by_action ON audit_entries (action, id);
CREATE INDEX audit_entries_by_source ON audit_entries (source, id);

-- Retention is the only delete: the archiver sets this flag inside its own transaction,
-- after the archived records are on disk in an NDJSON file, and clears it before
-- committing, so the flag is never seen set outside that transaction.
CREATE TABLE audit_archive_guard (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    archiving INTEGER NOT NULL CHECK (archiving IN (0, 1))
);
INSERT INTO audit_archive_guard (id, archiving) VALUES (1, 0);

DROP TRIGGER audit_entries_no_delete;
CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
WHEN (SELECT archiving FROM audit_archive_guard WHERE id = 1) <> 1
BEGIN
    SELECT RAISE(ABORT, 'audit entries are append-only');
END;

DROP TRIGGER audit_resolutions_no_delete;
CREATE TRIGGER audit_resolutions_no_delete BEFORE DELETE ON audit_resolutions
WHEN (SELECT archiving FROM audit_archive_guard WHERE id = 1) <> 1
BEGIN
    SELECT RAISE(ABORT, 'audit entries are append-only');
END;

-- Where the chain continues after an archive: verification of the remaining records starts
-- from the last archived record's hash (the archive file holds every earlier record with
-- its hashes, so archive + database verify from the genesis hash).
CREATE TABLE audit_archives (
    id           INTEGER PRIMARY KEY,
    time_ms      INTEGER NOT NULL,
    file         TEXT    NOT NULL,
    records      INTEGER NOT NULL,
    through_seq  INTEGER NOT NULL,
    through_hash TEXT    NOT NULL,
    -- The highest entry id archived, so ids never repeat once every entry is archived.
    max_entry_id INTEGER NOT NULL
);
CREATE TRIGGER audit_archives_no_update BEFORE UPDATE ON audit_archives
BEGIN
    SELECT RAISE(ABORT, 'audit archives are append-only');
END;
CREATE TRIGGER audit_archives_no_delete BEFORE DELETE ON audit_archives
BEGIN
    SELECT RAISE(ABORT, 'audit archives are append-only');
END;
