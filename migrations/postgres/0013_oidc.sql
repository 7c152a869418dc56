-- The OpenID Connect provider (DESIGN §11): clients declared in the manifests (a secret only
-- as its argon2id hash), the signing keys (the private key sealed with the server's key,
-- never in plaintext), and the codes and access tokens it issued (SHA-256 only). Removing a
-- client removes what was issued to it.

CREATE TABLE oidc_clients (
    id                        TEXT PRIMARY KEY,
    name                      TEXT NOT NULL,
    website                   TEXT,
    redirect_uris             TEXT NOT NULL,
    post_logout_redirect_uris TEXT NOT NULL,
    scopes                    TEXT NOT NULL,
    secret_marker             BIGINT,
    secret_hash               TEXT
);

CREATE TABLE oidc_keys (
    kid            TEXT PRIMARY KEY,
    created_at     TEXT NOT NULL,
    retired_at     TEXT,
    private_sealed TEXT NOT NULL,
    public_jwk     TEXT NOT NULL
);

CREATE TABLE oidc_codes (
    code_hash      TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
    customer_id    TEXT NOT NULL,
    contact        TEXT NOT NULL,
    redirect_uri   TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    scope          TEXT NOT NULL,
    nonce          TEXT,
    auth_time      TEXT NOT NULL,
    amr            TEXT NOT NULL,
    expires_at     TEXT NOT NULL,
    used_at        TEXT
);

CREATE TABLE oidc_tokens (
    token_hash  TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL REFERENCES oidc_clients (id) ON DELETE CASCADE,
    code_hash   TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    contact     TEXT NOT NULL,
    scope       TEXT NOT NULL,
    amr         TEXT NOT NULL,
    auth_time   TEXT NOT NULL,
    expires_at  TEXT NOT NULL,
    revoked_at  TEXT
);

CREATE INDEX oidc_tokens_code ON oidc_tokens (code_hash);
CREATE INDEX oidc_codes_expiry ON oidc_codes (expires_at);
CREATE INDEX oidc_tokens_expiry ON oidc_tokens (expires_at);

-- The `sub` claim of each login: random, stable, never the email.
CREATE TABLE oidc_subjects (
    customer_id TEXT NOT NULL,
    contact     TEXT NOT NULL,
    sub         TEXT NOT NULL UNIQUE,
    PRIMARY KEY (customer_id, contact)
);
