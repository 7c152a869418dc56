-- A login's credentials and grants go with it. Sessions, second factors, recovery codes,
-- passkeys, set-password links and OpenID Connect codes, tokens and subject ids are keyed by
-- the login's (customer, contact), without a foreign key; before this, a contact removed from
-- the manifests (or a customer deleted) kept its passkeys, second factor, recovery codes,
-- links and tokens, and a login created later under the same key (the same email given to
-- someone else, the same id reused) inherited them: the earlier holder's passkey signed in
-- as the new login. A trigger removes them with the login, under any connection; those of
-- logins already gone are removed once here. A login's subject id is not reused either.

CREATE INDEX oidc_codes_login ON oidc_codes (customer_id, contact);
CREATE INDEX oidc_tokens_login ON oidc_tokens (customer_id, contact);

DELETE FROM sessions WHERE NOT EXISTS (SELECT 1 FROM logins l
    WHERE l.customer_id = sessions.customer_id AND l.contact = sessions.contact);
DELETE FROM second_factors WHERE NOT EXISTS (SELECT 1 FROM logins l
    WHERE l.customer_id = second_factors.customer_id AND l.contact = second_factors.contact);
DELETE FROM recovery_codes WHERE NOT EXISTS (SELECT 1 FROM logins l
    WHERE l.customer_id = recovery_codes.customer_id AND l.contact = recovery_codes.contact);
DELETE FROM passkeys WHERE NOT EXISTS (SELECT 1 FROM logins l
    WHERE l.customer_id = passkeys.customer_id AND l.contact = passkeys.contact);
DELETE FROM set_password_tokens WHERE NOT EXISTS (SELECT 1 FROM logins l
    WHERE l.customer_id = set_password_tokens.customer_id AND l.contact = set_password_tokens.contact);
DELETE FROM oidc_codes WHERE NOT EXISTS (SELECT 1 FROM logins l
    WHERE l.customer_id = oidc_codes.customer_id AND l.contact = oidc_codes.contact);
DELETE FROM oidc_tokens WHERE NOT EXISTS (SELECT 1 FROM logins l
    WHERE l.customer_id = oidc_tokens.customer_id AND l.contact = oidc_tokens.contact);
DELETE FROM oidc_subjects WHERE NOT EXISTS (SELECT 1 FROM logins l
    WHERE l.customer_id = oidc_subjects.customer_id AND l.contact = oidc_subjects.contact);

CREATE TRIGGER login_credentials_go_with_it AFTER DELETE ON logins
BEGIN
    DELETE FROM sessions WHERE customer_id = OLD.customer_id AND contact = OLD.contact;
    DELETE FROM second_factors WHERE customer_id = OLD.customer_id AND contact = OLD.contact;
    DELETE FROM recovery_codes WHERE customer_id = OLD.customer_id AND contact = OLD.contact;
    DELETE FROM passkeys WHERE customer_id = OLD.customer_id AND contact = OLD.contact;
    DELETE FROM set_password_tokens WHERE customer_id = OLD.customer_id AND contact = OLD.contact;
    DELETE FROM oidc_codes WHERE customer_id = OLD.customer_id AND contact = OLD.contact;
    DELETE FROM oidc_tokens WHERE customer_id = OLD.customer_id AND contact = OLD.contact;
    DELETE FROM oidc_subjects WHERE customer_id = OLD.customer_id AND contact = OLD.contact;
END;
