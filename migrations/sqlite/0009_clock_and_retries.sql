-- An apply run with `--now` (another time than the system clock) records that time.
ALTER TABLE applies ADD COLUMN clock TEXT;
-- A message that failed waits before its next try (doubling, across runs), so a scheduled
-- `portico notify` does not spend its attempts in minutes.
ALTER TABLE notifications ADD COLUMN next_attempt_at TEXT;
