-- The plan index's files in less room (issue #26: the database at most 1.6 times its
-- managed rows; 100,000 one-customer files took 14 MiB of rows and key index). The table
-- is its own key index (WITHOUT ROWID: the rows are stored in path order, with no separate
-- index of paths), and each digest is its 32 bytes, not 64 hex digits. The rows recorded
-- before are dropped with the index they go with (whose format changed too): the next plan
-- is computed in full, and the next apply records both again.

DROP TABLE plan_index_files;
DELETE FROM plan_index;

CREATE TABLE plan_index_files (
    path   text PRIMARY KEY,
    digest blob NOT NULL,
    ids    blob NOT NULL,
    groups blob
) WITHOUT ROWID;
