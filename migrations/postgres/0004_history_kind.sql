-- History records applies and the day-2 operations `unlock` and `resend`.
ALTER TABLE applies ADD COLUMN kind TEXT NOT NULL DEFAULT 'apply';
