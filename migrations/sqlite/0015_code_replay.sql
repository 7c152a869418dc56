-- A code presented again is marked (RFC 6749 §4.1.2: the tokens it issued are revoked), so a
-- token being issued for it at that very moment is refused instead of outliving the revocation.
ALTER TABLE oidc_codes ADD COLUMN replayed_at TEXT;
