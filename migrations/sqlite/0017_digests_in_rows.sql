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

ALTER TABLE logins ADD COLUMN applied_digest INTEGER;
ALTER TABLE logins ADD COLUMN applied_apply_id BIGINT;

UPDATE logins SET (applied_digest, applied_apply_id) = (
    SELECT ((instr('0123456789abcdef', substr(o.digest, 1, 1)) - 1) - 16 * ((instr('0123456789abcdef', substr(o.digest, 1, 1)) - 1) >= 8)) * 1152921504606846976
        + (instr('0123456789abcdef', substr(o.digest, 2, 1)) - 1) * 72057594037927936
        + (instr('0123456789abcdef', substr(o.digest, 3, 1)) - 1) * 4503599627370496
        + (instr('0123456789abcdef', substr(o.digest, 4, 1)) - 1) * 281474976710656
        + (instr('0123456789abcdef', substr(o.digest, 5, 1)) - 1) * 17592186044416
        + (instr('0123456789abcdef', substr(o.digest, 6, 1)) - 1) * 1099511627776
        + (instr('0123456789abcdef', substr(o.digest, 7, 1)) - 1) * 68719476736
        + (instr('0123456789abcdef', substr(o.digest, 8, 1)) - 1) * 4294967296
        + (instr('0123456789abcdef', substr(o.digest, 9, 1)) - 1) * 268435456
        + (instr('0123456789abcdef', substr(o.digest, 10, 1)) - 1) * 16777216
        + (instr('0123456789abcdef', substr(o.digest, 11, 1)) - 1) * 1048576
        + (instr('0123456789abcdef', substr(o.digest, 12, 1)) - 1) * 65536
        + (instr('0123456789abcdef', substr(o.digest, 13, 1)) - 1) * 4096
        + (instr('0123456789abcdef', substr(o.digest, 14, 1)) - 1) * 256
        + (instr('0123456789abcdef', substr(o.digest, 15, 1)) - 1) * 16
        + (instr('0123456789abcdef', substr(o.digest, 16, 1)) - 1),
        o.apply_id
    FROM applied_objects o
    WHERE o.address = 'customer["' || replace(replace(logins.customer_id, '\', '\\'), '"', '\"') || '"]'
        || CASE WHEN logins.contact = '' THEN ''
           ELSE '.contact["' || replace(replace(logins.contact, '\', '\\'), '"', '\"') || '"]' END
      AND length(o.digest) = 16 AND NOT o.digest GLOB '*[^0-9a-f]*'
);

DELETE FROM applied_objects WHERE address LIKE 'customer[%';
