-- The plan index's files in less room (issue #26): each digest is its 32 bytes, not 64 hex
-- digits. The rows recorded before are dropped with the index they go with (whose format
-- changed too): the next plan is computed in full, and the next apply records both again.

DROP TABLE plan_index_files;
DELETE FROM plan_index;

CREATE TABLE plan_index_files (
    path   text PRIMARY KEY,
    digest bytea NOT NULL,
    ids    bytea NOT NULL,
    groups bytea
);

-- Digests and deflated lists do not compress: stored as they are, without trying.
ALTER TABLE plan_index_files ALTER COLUMN ids SET STORAGE EXTERNAL;
ALTER TABLE plan_index_files ALTER COLUMN groups SET STORAGE EXTERNAL;
