-- What portico last wrote for each object (a digest per resource address), so plan can tell
-- edits made outside portico from changes in the manifests; and the history of applies.

CREATE TABLE applied_objects (
    address TEXT PRIMARY KEY,
    digest  TEXT NOT NULL
);

CREATE TABLE applies (
    id               INTEGER PRIMARY KEY,
    applied_at       TEXT NOT NULL,
    actor            TEXT NOT NULL,
    git_commit       TEXT,
    manifests_digest TEXT NOT NULL,
    plan_digest      TEXT NOT NULL,
    summary          TEXT NOT NULL,
    changes          TEXT NOT NULL
);
