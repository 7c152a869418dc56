-- Smaller bookkeeping (issue #26: the database at most 1.6 times its managed rows).
-- `applied_objects` becomes a WITHOUT ROWID table: its rows live in the address's own
-- B-tree, where a rowid table kept every address twice (in the table and in the index of
-- its primary key; 15 MiB of 128 at 300,000 logins). `notifications.idempotency_key` loses
-- its UNIQUE index: keys are 128 random bits, never looked up (9 MiB at 200,000 messages).

CREATE TABLE applied_objects_new (
    address  TEXT PRIMARY KEY,
    digest   TEXT NOT NULL,
    apply_id BIGINT
) WITHOUT ROWID;
INSERT INTO applied_objects_new (address, digest, apply_id)
    SELECT address, digest, apply_id FROM applied_objects ORDER BY address;
DROP TABLE applied_objects;
ALTER TABLE applied_objects_new RENAME TO applied_objects;

CREATE TABLE notifications_new (
    id              INTEGER PRIMARY KEY,
    idempotency_key TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    customer_id     TEXT NOT NULL,
    contact         TEXT NOT NULL,
    email           TEXT NOT NULL,
    password_assigned INTEGER NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'cancelled', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT,
    last_attempt_at TEXT,
    sent_at         TEXT,
    claimed_until   TEXT,
    next_attempt_at TEXT,
    kind            TEXT NOT NULL DEFAULT 'new_access'
);
INSERT INTO notifications_new
    SELECT id, idempotency_key, created_at, customer_id, contact, email, password_assigned,
           status, attempts, last_error, last_attempt_at, sent_at, claimed_until,
           next_attempt_at, kind
    FROM notifications;
DROP TABLE notifications;
ALTER TABLE notifications_new RENAME TO notifications;
CREATE INDEX notifications_status ON notifications (status);

-- Logins lose their indexes by role and by website (10 MiB at 300,000 logins): nothing reads
-- logins by role or website but the rare removal of a role or website (a scan then) and the
-- end of sessions when a role changes, which now goes from the sessions to their logins.
DROP INDEX logins_role;
DROP INDEX logins_website;
