-- Secret push protection: a push that carries secrets and asks for a bypass is held for a
-- security reviewer on a ticket of its own, which keeps the redacted findings (rule, object,
-- line, path, commit, fingerprint; never a value) and the pusher's reason.

ALTER TABLE tickets ADD COLUMN findings TEXT;

ALTER TABLE tickets ADD COLUMN bypass_reason TEXT;

-- One pending ticket per exact update and code: the security review of an update and its
-- policy review (e.g. a protected branch) are decided apart, by different groups.
DROP INDEX tickets_one_pending_per_update;

CREATE UNIQUE INDEX tickets_one_pending_per_update_and_code
    ON tickets (repository, refname, old_id, new_id, code) WHERE status = 'pending';
