-- portico's live schema (SQLite). Managed columns are written by `portico apply`; the
-- columns marked "runtime" belong to the customer center and are never written by apply.

CREATE TABLE features (
    name    TEXT PRIMARY KEY,
    enabled INTEGER NOT NULL CHECK (enabled IN (0, 1))
);

CREATE TABLE login_policy (
    id                      INTEGER PRIMARY KEY CHECK (id = 1),
    max_failed_attempts     INTEGER NOT NULL CHECK (max_failed_attempts > 0),
    lockout_minutes         INTEGER NOT NULL CHECK (lockout_minutes > 0),
    session_timeout_minutes INTEGER NOT NULL CHECK (session_timeout_minutes > 0),
    password_min_length     INTEGER NOT NULL CHECK (password_min_length > 0)
);

CREATE TABLE websites (
    id   TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    url  TEXT NOT NULL
);

-- Standard roles (standard = 1) are written from the built-in catalog; custom roles from
-- manifests. Levels are effective levels (base role plus overrides); `none` is not stored.
CREATE TABLE roles (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    base       TEXT,
    standard   INTEGER NOT NULL DEFAULT 0 CHECK (standard IN (0, 1)),
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
    protect INTEGER NOT NULL DEFAULT 0 CHECK (protect IN (0, 1))
);

-- One row per login: the customer's own (contact = '') and each contact's (contact = the
-- contact's normalised email). `email` is unique across all logins.
CREATE TABLE logins (
    customer_id     TEXT NOT NULL REFERENCES customers (id) ON DELETE CASCADE,
    contact         TEXT NOT NULL,
    email           TEXT UNIQUE,
    name            TEXT,
    access          INTEGER NOT NULL CHECK (access IN (0, 1)),
    role_id         TEXT NOT NULL REFERENCES roles (id),
    website_id      TEXT REFERENCES websites (id),
    notify          INTEGER NOT NULL CHECK (notify IN (0, 1)),
    -- runtime
    password_hash   TEXT,
    failed_attempts INTEGER NOT NULL DEFAULT 0,
    locked_until    TEXT,
    last_login_at   TEXT,
    PRIMARY KEY (customer_id, contact)
);

CREATE INDEX logins_role ON logins (role_id);
CREATE INDEX logins_website ON logins (website_id);
