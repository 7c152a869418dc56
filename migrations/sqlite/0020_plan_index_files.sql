-- The plan index's files (issue #26): a row for each manifest file with customers the last
-- apply recorded, keyed by its path and digest, with its customers' ids (a deflated JSON
-- list) and, for a file of customers alone cut into runs of items, the digest and item
-- count of each run of consecutive customers (see src/manifest/split.rs, `groups`).
-- `plan_index` keeps the list of files; a plan reads the rows of the files that changed
-- only, and an apply writes only those: a 1% edit spread over every file parses the runs
-- around the edits, about 8% of the customers, not all of them. A row is used only while
-- its digest is the index's for that file; an apply that records no index removes them all.

CREATE TABLE plan_index_files (
    path   text PRIMARY KEY,
    digest text NOT NULL,
    ids    blob NOT NULL,
    groups blob
);
