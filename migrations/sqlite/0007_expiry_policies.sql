-- Time-bound access and guardrails (DESIGN §9): a login's expiry (UTC, `YYYY-MM-DDTHH:MM:SSZ`,
-- so it compares as text; a customer-center login check refuses a login whose expiry has
-- passed even before the next apply revokes it), and the organisation's access policies.
ALTER TABLE logins ADD COLUMN expires_at TEXT;

CREATE TABLE policies (
    id      TEXT PRIMARY KEY,
    message TEXT NOT NULL,
    -- The rule as JSON: {"max_level": {...}} and so on (schemas/manifest.schema.json).
    rule    TEXT NOT NULL
);
