-- The same schema serves SQLite and PostgreSQL: text ids, BIGINT unix milliseconds, BIGINT 0/1
-- for flags, and no backend-specific types or defaults.

-- One ticket per held ref update; a reviewer approves or denies it.
CREATE TABLE tickets (
    id TEXT PRIMARY KEY,
    repository TEXT NOT NULL,
    refname TEXT NOT NULL,
    old_id TEXT NOT NULL,
    new_id TEXT NOT NULL,
    operation TEXT NOT NULL CHECK (operation IN ('create', 'update', 'delete')),
    subject TEXT NOT NULL,
    agent BIGINT NOT NULL CHECK (agent IN (0, 1)),
    acting_for TEXT,
    request_id TEXT NOT NULL,
    rule_name TEXT,
    code TEXT NOT NULL,
    reason TEXT NOT NULL,
    approvers TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied')),
    created_at BIGINT NOT NULL,
    decided_by TEXT,
    decided_at BIGINT,
    decision_reason TEXT,
    decision_comment TEXT,
    expires_at BIGINT
);

-- At most one pending ticket per exact update, so concurrent identical pushes share it.
CREATE UNIQUE INDEX tickets_one_pending_per_update
    ON tickets (repository, refname, old_id, new_id) WHERE status = 'pending';

CREATE INDEX tickets_by_update ON tickets (repository, refname, old_id, new_id, created_at);

CREATE INDEX tickets_by_status ON tickets (status, created_at);

-- Every verdict the service gave, one row per ref update, written before the answer is sent.
CREATE TABLE verdicts (
    id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    repository TEXT NOT NULL,
    refname TEXT NOT NULL,
    old_id TEXT NOT NULL,
    new_id TEXT NOT NULL,
    operation TEXT NOT NULL CHECK (operation IN ('create', 'update', 'delete')),
    subject TEXT NOT NULL,
    acting_for TEXT,
    agent BIGINT NOT NULL CHECK (agent IN (0, 1)),
    token_id TEXT,
    decision TEXT NOT NULL CHECK (decision IN ('allow', 'deny', 'hold')),
    code TEXT,
    reason TEXT,
    rule_name TEXT,
    ticket_id TEXT REFERENCES tickets (id),
    decided_at BIGINT NOT NULL
);

CREATE INDEX verdicts_by_request ON verdicts (request_id, position);

CREATE INDEX verdicts_by_ticket ON verdicts (ticket_id, decided_at);
