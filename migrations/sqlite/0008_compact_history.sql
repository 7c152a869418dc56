-- Compact history (DESIGN §7): an apply's change list is stored deflated (a first apply of
-- 300,000 logins was 124 MB of JSON in one row), and each applied object remembers the apply
-- that last wrote it, so "the last change touching this login" needs no text search.
ALTER TABLE applies ADD COLUMN changes_z BLOB;
ALTER TABLE applied_objects ADD COLUMN apply_id BIGINT;
