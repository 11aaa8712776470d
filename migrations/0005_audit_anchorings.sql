-- Where and from which record the chain was anchored outside the database
-- (src/audit_anchor.rs): once a log has been anchored, a missing anchor contradicts this
-- table, and signalbox reports it instead of anchoring the log afresh. A row is written at
-- the first anchor and at every `signalbox audit anchor --reset` (reset = 1, with who ran it).
CREATE TABLE audit_anchorings (
    id       INTEGER PRIMARY KEY,
    time_ms  INTEGER NOT NULL,
    location TEXT    NOT NULL,
    seq      INTEGER NOT NULL,
    hash     TEXT    NOT NULL,
    actor    TEXT    NOT NULL,
    reset    INTEGER NOT NULL CHECK (reset IN (0, 1))
);
CREATE TRIGGER audit_anchorings_no_update BEFORE UPDATE ON audit_anchorings
BEGIN
    SELECT RAISE(ABORT, 'audit anchorings are append-only');
END;
CREATE TRIGGER audit_anchorings_no_delete BEFORE DELETE ON audit_anchorings
BEGIN
    SELECT RAISE(ABORT, 'audit anchorings are append-only');
END;
