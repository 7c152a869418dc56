-- Queued messages in less room again (issue #26: the database at most 1.6 times its managed
-- rows; 200,000 messages queued by a first apply took 16 MiB). A message queued from now on
-- stores no idempotency key: its key is derived when it is read, the first 16 bytes of
-- SHA-256 over this store's random id and the message's id (unique in the store, the same at
-- every attempt, and telling a receiver nothing about the store). A contact's message stores
-- no email when it is the contact's own (NULL: the contact). Messages queued before keep
-- their stored key; their email is NULL where it equals the contact.

CREATE TABLE notifications_new (
    id              INTEGER PRIMARY KEY,
    idempotency_key BLOB,
    created_at      INTEGER NOT NULL,
    customer_id     TEXT NOT NULL,
    contact         TEXT NOT NULL,
    email           TEXT,
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
    SELECT id, idempotency_key, created_at, customer_id, contact, NULLIF(email, contact),
           password_assigned, status, attempts, last_error, last_attempt_at, sent_at,
           claimed_until, next_attempt_at, kind
    FROM notifications;
DROP TABLE notifications;
ALTER TABLE notifications_new RENAME TO notifications;
CREATE INDEX notifications_status ON notifications (status);
