-- Forgot password and the absolute session limit (DESIGN §10.2): the login policy's
-- `session_max_hours`, how long a reset link lives and the reset message's own template,
-- and which kind of message each queued notification is (`new_access` or `reset`).
ALTER TABLE login_policy ADD COLUMN session_max_hours BIGINT NOT NULL DEFAULT 12;
ALTER TABLE notification_settings ADD COLUMN reset_ttl_minutes BIGINT NOT NULL DEFAULT 60;
ALTER TABLE notification_settings ADD COLUMN reset_subject TEXT;
ALTER TABLE notification_settings ADD COLUMN reset_text TEXT;
ALTER TABLE notification_settings ADD COLUMN reset_html TEXT;
ALTER TABLE notifications ADD COLUMN kind TEXT NOT NULL DEFAULT 'new_access';
CREATE INDEX login_events_at ON login_events (at);

-- Failed sign-ins per client address in the current hour (per-IP throttling), shared by
-- every `portico serve` instance.
CREATE TABLE address_failures (
    address      TEXT PRIMARY KEY,
    window_start TEXT NOT NULL,
    failures     BIGINT NOT NULL
);
