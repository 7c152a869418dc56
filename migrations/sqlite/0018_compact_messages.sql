-- Queued messages in less room (issue #26: the database at most 1.6 times its managed rows;
-- 200,000 messages queued by a first apply took 27 MiB). The idempotency key is kept as its
-- 16 random bytes (was 32 hex digits); `created_at` as Unix seconds (was 20 characters of
-- RFC 3339); `status` as a number: 0 pending, 1 sent, 2 cancelled, 3 failed; `kind` as a
-- number: 0 new access, 1 reset. Every query that shows them turns them back into the text.
-- A key that is not hex (portico never wrote one) is kept as its own bytes.

CREATE TABLE notifications_new (
    id              INTEGER PRIMARY KEY,
    idempotency_key BLOB NOT NULL,
    created_at      INTEGER NOT NULL,
    customer_id     TEXT NOT NULL,
    contact         TEXT NOT NULL,
    email           TEXT NOT NULL,
    password_assigned INTEGER NOT NULL,
    status          INTEGER NOT NULL CHECK (status IN (0, 1, 2, 3)),
    attempts        BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT,
    last_attempt_at TEXT,
    sent_at         TEXT,
    claimed_until   TEXT,
    next_attempt_at TEXT,
    kind            INTEGER NOT NULL DEFAULT 0 CHECK (kind IN (0, 1))
);
INSERT INTO notifications_new
    SELECT id,
           CASE WHEN length(idempotency_key) % 2 = 0 AND NOT idempotency_key GLOB '*[^0-9a-fA-F]*'
                THEN unhex(idempotency_key) ELSE CAST(idempotency_key AS BLOB) END,
           COALESCE(unixepoch(created_at), 0),
           customer_id, contact, email, password_assigned,
           CASE status WHEN 'pending' THEN 0 WHEN 'sent' THEN 1 WHEN 'cancelled' THEN 2 ELSE 3 END,
           attempts, last_error, last_attempt_at, sent_at, claimed_until, next_attempt_at,
           CASE kind WHEN 'reset' THEN 1 ELSE 0 END
    FROM notifications;
DROP TABLE notifications;
ALTER TABLE notifications_new RENAME TO notifications;
CREATE INDEX notifications_status ON notifications (status);
