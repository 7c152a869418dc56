-- Email delivery (DESIGN §3): notification settings gain an SMTP transport beside the
-- webhook, sender and reply-to addresses, an attempt budget and the message templates; a
-- message that exhausts its budget, or is refused for good, is `failed` (dead letter).

CREATE TABLE notification_settings_new (
    id                BIGINT PRIMARY KEY CHECK (id = 1),
    url               TEXT,
    auth_env          TEXT,
    smtp_url          TEXT,
    smtp_username     TEXT,
    smtp_password_env TEXT,
    from_address      TEXT,
    reply_to          TEXT,
    login_url         TEXT,
    token_ttl_hours   BIGINT NOT NULL CHECK (token_ttl_hours > 0),
    max_attempts      BIGINT NOT NULL DEFAULT 10 CHECK (max_attempts > 0),
    template_subject  TEXT,
    template_text     TEXT,
    template_html     TEXT,
    CHECK ((url IS NULL) <> (smtp_url IS NULL))
);
INSERT INTO notification_settings_new (id, url, auth_env, login_url, token_ttl_hours)
    SELECT id, url, auth_env, login_url, token_ttl_hours FROM notification_settings;
DROP TABLE notification_settings;
ALTER TABLE notification_settings_new RENAME TO notification_settings;

CREATE TABLE notifications_new (
    id              INTEGER PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
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
    claimed_until   TEXT
);
INSERT INTO notifications_new
    SELECT id, idempotency_key, created_at, customer_id, contact, email, password_assigned,
           status, attempts, last_error, last_attempt_at, sent_at, claimed_until
    FROM notifications;
DROP TABLE notifications;
ALTER TABLE notifications_new RENAME TO notifications;
CREATE INDEX notifications_status ON notifications (status);
