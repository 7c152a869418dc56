-- Initial passwords (the reset marker portico last applied; the hash itself is runtime
-- data), notification delivery settings, the new-access outbox and set-password tokens.

ALTER TABLE logins ADD COLUMN password_marker BIGINT;
ALTER TABLE logins ADD COLUMN password_set_at TEXT;

CREATE TABLE notification_settings (
    id              BIGINT PRIMARY KEY CHECK (id = 1),
    url             TEXT NOT NULL,
    auth_env        TEXT,
    login_url       TEXT,
    token_ttl_hours BIGINT NOT NULL CHECK (token_ttl_hours > 0)
);

-- One row per new-access message. Never holds a password or a token.
CREATE TABLE notifications (
    id              BIGINT PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    created_at      TEXT NOT NULL,
    customer_id     TEXT NOT NULL,
    contact         TEXT NOT NULL,
    email           TEXT NOT NULL,
    password_assigned BOOLEAN NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'cancelled')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    last_error      TEXT,
    last_attempt_at TEXT,
    sent_at         TEXT
);

CREATE INDEX notifications_status ON notifications (status);

-- Single-use set-password tokens, stored only as SHA-256 hashes.
CREATE TABLE set_password_tokens (
    token_hash      TEXT PRIMARY KEY,
    notification_id BIGINT NOT NULL,
    customer_id     TEXT NOT NULL,
    contact         TEXT NOT NULL,
    expires_at      TEXT NOT NULL,
    used_at         TEXT,
    revoked_at      TEXT
);

CREATE INDEX set_password_tokens_login ON set_password_tokens (customer_id, contact);
