-- The plan index's runs of items (issue #26): for each file of customers the last apply
-- recorded, the digest and item count of each run of consecutive customers (see
-- src/manifest/split.rs, `groups`), keyed by the file's path and digest. A plan whose
-- customer files changed in a few places reads only the changed runs of them: a 1% edit
-- spread over every file parses about 4% of the customers, not all of them. A row is used
-- only while its digest is the index's for that file; an apply that records no index
-- removes them all.

CREATE TABLE plan_index_groups (
    path   text PRIMARY KEY,
    digest text NOT NULL,
    groups bytea NOT NULL
);

-- Digests do not compress: stored as they are, without trying.
ALTER TABLE plan_index_groups ALTER COLUMN groups SET STORAGE EXTERNAL;
