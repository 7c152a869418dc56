-- A message being delivered is claimed, so two `portico notify` runs never send it twice
-- (a claim left by a crashed run expires). Ids come from the engine (INTEGER PRIMARY KEY),
-- never from MAX(id) + 1.
ALTER TABLE notifications ADD COLUMN claimed_until TEXT;
