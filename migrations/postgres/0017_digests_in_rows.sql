-- Drift digests move into the rows they describe (issue #26: the database at most 1.6 times
-- its managed rows). A customer's digest goes in its own login's row (contact ''), a
-- contact's in its login's row, as the signed 64-bit number of its 16 hex digits, with the
-- apply that wrote it; `applied_objects` keeps the few other objects (features, roles,
-- websites, policies, settings, OIDC clients). At 300,000 logins `applied_objects` held
-- every address again as its key: 19 MiB of a 97 MiB database.
--
-- Addresses are matched as portico writes them: `customer["ID"]` and
-- `customer["ID"].contact["EMAIL"]`, with `"` and `\` escaped by a backslash. An id holding an
-- invisible character (escaped as `\u{..}`) is not matched: its digest is dropped, and the
-- next plan labels a difference on that login "changed outside portico" rather than
-- "changed in the manifests" until an apply writes it again. Nothing else depends on it.

ALTER TABLE logins ADD COLUMN applied_digest bigint, ADD COLUMN applied_apply_id bigint;

UPDATE logins SET applied_digest = ('x' || o.digest)::bit(64)::bigint, applied_apply_id = o.apply_id
FROM applied_objects o
WHERE o.address = 'customer["' || replace(replace(logins.customer_id, '\', '\\'), '"', '\"') || '"]'
        || CASE WHEN logins.contact = '' THEN ''
           ELSE '.contact["' || replace(replace(logins.contact, '\', '\\'), '"', '\"') || '"]' END
  AND o.digest ~ '^[0-9a-f]{16}$';

DELETE FROM applied_objects WHERE address LIKE 'customer[%';
