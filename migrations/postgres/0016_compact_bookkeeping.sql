-- Smaller bookkeeping (issue #26): `notifications.idempotency_key` loses its UNIQUE index;
-- keys are 128 random bits, never looked up (9 MiB at 200,000 messages).
ALTER TABLE notifications DROP CONSTRAINT IF EXISTS notifications_idempotency_key_key;

-- Logins lose their indexes by role and by website (10 MiB at 300,000 logins): nothing reads
-- logins by role or website but the rare removal of a role or website (a scan then) and the
-- end of sessions when a role changes, which now goes from the sessions to their logins.
DROP INDEX logins_role;
DROP INDEX logins_website;
