-- portico's live schema (PostgreSQL). Managed columns are written by `portico apply`; the
-- columns marked "runtime" belong to the customer center and are never written by apply.
-- Kept to SQL that PostgreSQL-wire distributed engines also accept.

CREATE TABLE features (
    name    TEXT PRIMARY KEY,
    enabled BOOLEAN NOT NULL
);

CREATE TABLE login_policy (
    id                      BIGINT PRIMARY KEY CHECK (id = 1),
    max_failed_attempts     BIGINT NOT NULL CHECK (max_failed_attempts > 0),
    lockout_minutes         BIGINT NOT NULL CHECK (lockout_minutes > 0),
    session_timeout_minutes BIGINT NOT NULL CHECK (session_timeout_minutes > 0),
    password_min_length     BIGINT NOT NULL CHECK (password_min_length > 0)
);

CREATE TABLE websites (
    id   TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    url  TEXT NOT NULL
);

-- Standard roles (standard = true) are written from the built-in catalog; custom roles from
-- manifests. Levels are effective levels (base role plus overrides); `none` is not stored.
CREATE TABLE roles (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    base       TEXT,
    standard   BOOLEAN NOT NULL DEFAULT false,
    two_factor TEXT NOT NULL CHECK (two_factor IN ('off', 'required'))
);

CREATE TABLE role_permissions (
    role_id    TEXT NOT NULL REFERENCES roles (id) ON DELETE CASCADE,
    permission TEXT NOT NULL,
    level      TEXT NOT NULL CHECK (level IN ('view', 'create', 'edit', 'full')),
    PRIMARY KEY (role_id, permission)
);

CREATE TABLE customers (
    id      TEXT PRIMARY KEY,
    name    TEXT NOT NULL,
    protect BOOLEAN NOT NULL DEFAULT false
);

-- One row per login: the customer's own (contact = '') and each contact's (contact = the
-- contact's normalised email). `email` is unique across all logins.
CREATE TABLE logins (
    customer_id     TEXT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    contact         TEXT NOT NULL,
    email           TEXT UNIQUE,
    name            TEXT,
    access          BOOLEAN NOT NULL,
    role_id         TEXT NOT NULL REFERENCES roles (id),
    website_id      TEXT REFERENCES websites (id),
    notify          BOOLEAN NOT NULL,
    -- runtime
    password_hash   TEXT,
    failed_attempts BIGINT NOT NULL DEFAULT 0,
    locked_until    TEXT,
    last_login_at   TEXT,
    PRIMARY KEY (customer_id, contact)
);

CREATE INDEX logins_role ON logins (role_id);
CREATE INDEX logins_website ON logins (website_id);
