-- The audit record: every request through the gate, every verdict and every reviewer decision,
-- grouped into sessions and chained by hash within each session. Same portable types as 0001.

-- The head of each session's chain. Appending takes this row's lock (an UPDATE inside the
-- appending transaction), so sequence numbers stay gapless and ordered when several service
-- instances write one session at once; the head also proves how long the chain was, so a
-- removed last record is caught too.
CREATE TABLE audit_sessions (
    session TEXT PRIMARY KEY,
    last_seq BIGINT NOT NULL,
    last_hash TEXT NOT NULL,
    first_at BIGINT NOT NULL,
    last_at BIGINT NOT NULL,
    subject TEXT,
    acting_for TEXT,
    agent BIGINT NOT NULL CHECK (agent IN (0, 1))
);

CREATE INDEX audit_sessions_by_time ON audit_sessions (last_at);

-- One record per event, verdict or decision. `record` is the canonical JSON the hash covers;
-- the other columns repeat some of its fields for queries, and verify checks they agree.
CREATE TABLE audit_records (
    session TEXT NOT NULL,
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('event', 'verdict', 'decision')),
    request_id TEXT,
    occurred_at BIGINT NOT NULL,
    subject TEXT,
    acting_for TEXT,
    agent BIGINT NOT NULL CHECK (agent IN (0, 1)),
    token_id TEXT,
    repository TEXT,
    record TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (session, seq)
);

CREATE INDEX audit_records_by_time ON audit_records (occurred_at);

CREATE INDEX audit_records_by_request ON audit_records (request_id);

CREATE INDEX audit_records_by_subject ON audit_records (subject, occurred_at);

CREATE INDEX audit_records_by_acting_for ON audit_records (acting_for, occurred_at);

CREATE INDEX audit_records_by_repository ON audit_records (repository, occurred_at);

-- The refs a record names: ref updates of pushes, verdicts and decisions (with their ids and
-- ticket), and refs a read asked for or was shown (without ids).
CREATE TABLE audit_refs (
    session TEXT NOT NULL,
    seq BIGINT NOT NULL,
    position BIGINT NOT NULL,
    refname TEXT NOT NULL,
    old_id TEXT,
    new_id TEXT,
    ticket_id TEXT,
    PRIMARY KEY (session, seq, position)
);

CREATE INDEX audit_refs_by_ref ON audit_refs (refname);

CREATE INDEX audit_refs_by_ticket ON audit_refs (ticket_id);

-- Commit id -> record: the new tip of every ref update (`tip`) and every commit a pushed pack
-- carried (`pack`).
CREATE TABLE audit_commits (
    commit_id TEXT NOT NULL,
    session TEXT NOT NULL,
    seq BIGINT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('tip', 'pack')),
    refname TEXT,
    PRIMARY KEY (commit_id, session, seq, source)
);

-- Read events that were not recorded, by who dropped them: `filter` (its workers' bounded
-- queues, reported in each batch) and `service` (this service's bounded read queue).
CREATE TABLE audit_drops (
    source TEXT PRIMARY KEY,
    dropped BIGINT NOT NULL
);
