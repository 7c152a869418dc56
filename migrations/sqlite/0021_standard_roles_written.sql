-- The standard roles as last written (issue #26): every apply wrote the catalog's standard
-- roles again (a third of a 10-login apply's statements on PostgreSQL). An apply now records
-- a digest of the rows it left and the write count `n` after it; the next apply rewrites
-- them only when either differs: another build's catalog, or any write to `roles` or
-- `role_permissions` since (every one raises `n`). NULL until the first apply.

ALTER TABLE managed_changes ADD COLUMN roles_digest blob;
ALTER TABLE managed_changes ADD COLUMN roles_at BIGINT;
