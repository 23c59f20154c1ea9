-- Reviewer decisions: the pack a held push carried (for the ticket page), each reviewer's
-- decision (several approvals where the policy asks for N of a group), and the delivery record
-- of the webhook notifications. Same portable types as 0001.

-- The pack summary of the open push that waited on the ticket (JSON, commits without content).
ALTER TABLE tickets ADD COLUMN pack TEXT;

-- Every decision by one reviewer on one ticket: who, when, why, and for how long an approval
-- lasts. A ticket is approved once enough distinct reviewers approved it, denied by the first
-- denial. The reviewer's own `acting_for` is kept so an agent can be told apart from its person.
CREATE TABLE decisions (
    id TEXT PRIMARY KEY,
    ticket_id TEXT NOT NULL REFERENCES tickets (id),
    reviewer TEXT NOT NULL,
    reviewer_acting_for TEXT,
    decision TEXT NOT NULL CHECK (decision IN ('approve', 'deny')),
    reason TEXT,
    comment TEXT,
    valid_until BIGINT,
    decided_at BIGINT NOT NULL
);

-- One decision per reviewer and ticket: N approvals are N different people.
CREATE UNIQUE INDEX decisions_one_per_reviewer ON decisions (ticket_id, reviewer);

CREATE INDEX decisions_by_time ON decisions (decided_at);

-- One row per webhook notification (a new hold or a decision); the unique key lets exactly one
-- service instance claim each event. `target` is the webhook's configured name, never its URL,
-- which often carries a secret.
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    ticket_id TEXT NOT NULL REFERENCES tickets (id),
    event TEXT NOT NULL,
    target TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts BIGINT NOT NULL,
    last_status BIGINT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE UNIQUE INDEX webhook_deliveries_one_per_event ON webhook_deliveries (event, target);

CREATE INDEX webhook_deliveries_by_ticket ON webhook_deliveries (ticket_id, created_at);
