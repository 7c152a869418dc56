-- The login service's own state (DESIGN §10), all in the database so several `portico
-- serve` instances share it: sessions (by the SHA-256 of their id, never the id), failed
-- sign-ins of emails no login has (counted and locked like real ones, so a lockout reveals
-- nothing), and the events sign-ins leave (never a secret).

CREATE TABLE sessions (
    id_hash      TEXT PRIMARY KEY,
    customer_id  TEXT NOT NULL,
    contact      TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    expires_at   TEXT NOT NULL
);

CREATE INDEX sessions_login ON sessions (customer_id, contact);

CREATE TABLE unknown_signins (
    email_hash      TEXT PRIMARY KEY,
    failed_attempts BIGINT NOT NULL DEFAULT 0,
    locked_until    TEXT
);

CREATE TABLE login_events (
    id      INTEGER PRIMARY KEY,
    at      TEXT NOT NULL,
    email   TEXT NOT NULL,
    kind    TEXT NOT NULL,
    address TEXT,
    detail  TEXT
);

CREATE INDEX login_events_email ON login_events (email, at);
