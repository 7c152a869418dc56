-- Queued messages in less room (issue #26; see the SQLite migration of the same number):
-- the idempotency key as its 16 bytes, `created_at` as Unix seconds, `status` (0 pending,
-- 1 sent, 2 cancelled, 3 failed) and `kind` (0 new access, 1 reset) as numbers. Every query
-- that shows them turns them back into the text. A key that is not hex is kept as its bytes.

ALTER TABLE notifications DROP CONSTRAINT notifications_status_check;
ALTER TABLE notifications ALTER COLUMN kind DROP DEFAULT;
ALTER TABLE notifications
    ALTER COLUMN idempotency_key TYPE bytea USING
        CASE WHEN idempotency_key ~ '^([0-9a-fA-F]{2})*$' THEN decode(idempotency_key, 'hex')
             ELSE convert_to(idempotency_key, 'UTF8') END,
    ALTER COLUMN created_at TYPE bigint USING extract(epoch FROM created_at::timestamptz)::bigint,
    ALTER COLUMN status TYPE integer USING
        CASE status WHEN 'pending' THEN 0 WHEN 'sent' THEN 1 WHEN 'cancelled' THEN 2 ELSE 3 END,
    ALTER COLUMN kind TYPE integer USING CASE kind WHEN 'reset' THEN 1 ELSE 0 END;
ALTER TABLE notifications ALTER COLUMN kind SET DEFAULT 0;
ALTER TABLE notifications ADD CONSTRAINT notifications_status_check CHECK (status IN (0, 1, 2, 3));
ALTER TABLE notifications ADD CONSTRAINT notifications_kind_check CHECK (kind IN (0, 1));
