-- A message being delivered is claimed, so two `portico notify` runs never send it twice
-- (a claim left by a crashed run expires). Ids come from sequences, never from MAX(id) + 1,
-- which races on engines that do not enforce advisory locks (CockroachDB).
ALTER TABLE notifications ADD COLUMN claimed_until TEXT;

CREATE SEQUENCE notifications_id_seq OWNED BY notifications.id;
SELECT setval('notifications_id_seq', COALESCE((SELECT MAX(id) FROM notifications), 0) + 1, false);
ALTER TABLE notifications ALTER COLUMN id SET DEFAULT nextval('notifications_id_seq');

CREATE SEQUENCE applies_id_seq OWNED BY applies.id;
SELECT setval('applies_id_seq', COALESCE((SELECT MAX(id) FROM applies), 0) + 1, false);
ALTER TABLE applies ALTER COLUMN id SET DEFAULT nextval('applies_id_seq');
