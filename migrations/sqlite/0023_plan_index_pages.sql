-- The plan index's list of files in pages (issue #26: an everyday apply at most 1.2 times
-- its plan). The list was part of the index's own bytes: for 100,000 one-customer files,
-- every apply serialised, deflated and wrote 4 MB again to change a few entries. Each page
-- (about 256 files, cut where a path's CRC-32 says, so that adding or removing a file
-- changes one page) is a deflated JSON list under its first path; the index lists the pages
-- with their checksums, and an apply writes only the pages whose files changed. The index
-- recorded before lists no pages: it is dropped, the next plan is computed in full, and the
-- next apply records it again.

DELETE FROM plan_index;
DELETE FROM plan_index_files;

CREATE TABLE plan_index_pages (
    first text PRIMARY KEY,
    body  blob NOT NULL
);
