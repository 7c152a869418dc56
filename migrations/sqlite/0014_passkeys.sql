-- Passkeys (DESIGN §11): each login's WebAuthn credentials (public keys and their signature
-- counters, as webauthn-rs serialises them: no secret), and the ceremonies in progress
-- (their challenge state, by the SHA-256 of the id the browser holds; minutes long).

CREATE TABLE passkeys (
    credential_id TEXT PRIMARY KEY,
    customer_id   TEXT NOT NULL,
    contact       TEXT NOT NULL,
    user_handle   TEXT NOT NULL,
    name          TEXT NOT NULL,
    passkey       TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    last_used_at  TEXT
);

CREATE INDEX passkeys_login ON passkeys (customer_id, contact);
CREATE INDEX passkeys_handle ON passkeys (user_handle);

CREATE TABLE passkey_ceremonies (
    id_hash     TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    customer_id TEXT,
    contact     TEXT,
    state       TEXT NOT NULL,
    expires_at  TEXT NOT NULL
);
