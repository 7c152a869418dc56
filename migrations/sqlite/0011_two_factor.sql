-- Two-factor sign-in (DESIGN §10.2): a login's TOTP seed, encrypted with the server's key
-- (never in plaintext), the last step accepted (a code is never accepted twice), its
-- recovery codes (SHA-256 only), and which factors each session has passed.

CREATE TABLE second_factors (
    customer_id   TEXT NOT NULL,
    contact       TEXT NOT NULL,
    secret_sealed TEXT NOT NULL,
    confirmed_at  TEXT,
    last_step     BIGINT,
    PRIMARY KEY (customer_id, contact)
);

CREATE TABLE recovery_codes (
    code_hash   TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL,
    contact     TEXT NOT NULL,
    used_at     TEXT
);

CREATE INDEX recovery_codes_login ON recovery_codes (customer_id, contact);

ALTER TABLE sessions ADD COLUMN factors TEXT NOT NULL DEFAULT 'pwd';
