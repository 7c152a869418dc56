-- A login's credentials and grants go with it: see the SQLite migration of the same number.
-- Here one trigger per statement removes those of every login the statement deleted (a
-- customer's cascade included), in a few set-based deletes.

CREATE INDEX oidc_codes_login ON oidc_codes (customer_id, contact);
CREATE INDEX oidc_tokens_login ON oidc_tokens (customer_id, contact);

CREATE FUNCTION login_credentials_go_with_it() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM sessions t USING gone g WHERE t.customer_id = g.customer_id AND t.contact = g.contact;
    DELETE FROM second_factors t USING gone g WHERE t.customer_id = g.customer_id AND t.contact = g.contact;
    DELETE FROM recovery_codes t USING gone g WHERE t.customer_id = g.customer_id AND t.contact = g.contact;
    DELETE FROM passkeys t USING gone g WHERE t.customer_id = g.customer_id AND t.contact = g.contact;
    DELETE FROM set_password_tokens t USING gone g WHERE t.customer_id = g.customer_id AND t.contact = g.contact;
    DELETE FROM oidc_codes t USING gone g WHERE t.customer_id = g.customer_id AND t.contact = g.contact;
    DELETE FROM oidc_tokens t USING gone g WHERE t.customer_id = g.customer_id AND t.contact = g.contact;
    DELETE FROM oidc_subjects t USING gone g WHERE t.customer_id = g.customer_id AND t.contact = g.contact;
    RETURN NULL;
END $$;

CREATE TRIGGER login_credentials_go_with_it AFTER DELETE ON logins
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT
    EXECUTE FUNCTION login_credentials_go_with_it();

DELETE FROM sessions t WHERE NOT EXISTS (SELECT 1 FROM logins l WHERE l.customer_id = t.customer_id AND l.contact = t.contact);
DELETE FROM second_factors t WHERE NOT EXISTS (SELECT 1 FROM logins l WHERE l.customer_id = t.customer_id AND l.contact = t.contact);
DELETE FROM recovery_codes t WHERE NOT EXISTS (SELECT 1 FROM logins l WHERE l.customer_id = t.customer_id AND l.contact = t.contact);
DELETE FROM passkeys t WHERE NOT EXISTS (SELECT 1 FROM logins l WHERE l.customer_id = t.customer_id AND l.contact = t.contact);
DELETE FROM set_password_tokens t WHERE NOT EXISTS (SELECT 1 FROM logins l WHERE l.customer_id = t.customer_id AND l.contact = t.contact);
DELETE FROM oidc_codes t WHERE NOT EXISTS (SELECT 1 FROM logins l WHERE l.customer_id = t.customer_id AND l.contact = t.contact);
DELETE FROM oidc_tokens t WHERE NOT EXISTS (SELECT 1 FROM logins l WHERE l.customer_id = t.customer_id AND l.contact = t.contact);
DELETE FROM oidc_subjects t WHERE NOT EXISTS (SELECT 1 FROM logins l WHERE l.customer_id = t.customer_id AND l.contact = t.contact);
