-- The plan's index (issue #26: a plan in proportion to the change).
--
-- `managed_changes.n` counts writes to the columns a plan reads (the managed ones). Every
-- such write raises it, whoever makes it (portico, a day-2 command, raw SQL): the triggers
-- below fire on inserts, deletes and updates of those columns, never on the login
-- service's runtime columns (password hashes, failed attempts, lockouts, last sign-in),
-- except a password hash removed (a login without one may be planned a new password).
-- A plan's `live_fingerprint` is this store's random id with `n`: apply refuses a plan
-- whose count moved. `n` starts at 0 on an account nothing was written to (it then reads
-- as the empty account a plan computed without a database saw), else at 1.
--
-- `plan_index` is what the last apply from manifest files recorded when it left the
-- database exactly as those files describe it (see docs/performance.md, "Incremental
-- plans"): each file's digest, whether it holds only customers, and their ids. A plan
-- whose files differ from it only in customer files, with `n` unchanged since, reads and
-- checks only those files and the rows of their customers.

CREATE TABLE managed_changes (
    id    integer PRIMARY KEY CHECK (id = 1),
    n     bigint NOT NULL,
    store text NOT NULL
);

INSERT INTO managed_changes (id, n, store)
SELECT 1, CASE WHEN EXISTS (SELECT 1 FROM features) OR EXISTS (SELECT 1 FROM login_policy) OR EXISTS (SELECT 1 FROM websites) OR EXISTS (SELECT 1 FROM role_permissions) OR EXISTS (SELECT 1 FROM customers) OR EXISTS (SELECT 1 FROM logins) OR EXISTS (SELECT 1 FROM policies) OR EXISTS (SELECT 1 FROM oidc_clients) OR EXISTS (SELECT 1 FROM notification_settings) OR EXISTS (SELECT 1 FROM roles WHERE NOT standard) THEN 1 ELSE 0 END, md5(random()::text || clock_timestamp()::text);

CREATE TABLE plan_index (
    id      integer PRIMARY KEY CHECK (id = 1),
    changes bigint NOT NULL,
    body    bytea NOT NULL
);

CREATE INDEX logins_expiry ON logins (expires_at) WHERE expires_at IS NOT NULL;

CREATE FUNCTION portico_managed_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE managed_changes SET n = n + 1 WHERE id = 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER managed_features AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON features
    FOR EACH STATEMENT EXECUTE FUNCTION portico_managed_change();
CREATE TRIGGER managed_login_policy AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON login_policy
    FOR EACH STATEMENT EXECUTE FUNCTION portico_managed_change();
CREATE TRIGGER managed_websites AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON websites
    FOR EACH STATEMENT EXECUTE FUNCTION portico_managed_change();
CREATE TRIGGER managed_roles AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON roles
    FOR EACH STATEMENT EXECUTE FUNCTION portico_managed_change();
CREATE TRIGGER managed_role_permissions AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON role_permissions
    FOR EACH STATEMENT EXECUTE FUNCTION portico_managed_change();
CREATE TRIGGER managed_customers AFTER INSERT OR DELETE OR UPDATE OF id, name, protect OR TRUNCATE ON customers
    FOR EACH STATEMENT EXECUTE FUNCTION portico_managed_change();
CREATE TRIGGER managed_logins AFTER INSERT OR DELETE OR UPDATE OF customer_id, contact, email, name, access, role_id, website_id, notify, password_marker, expires_at OR TRUNCATE ON logins
    FOR EACH STATEMENT EXECUTE FUNCTION portico_managed_change();
CREATE TRIGGER managed_policies AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON policies
    FOR EACH STATEMENT EXECUTE FUNCTION portico_managed_change();
CREATE TRIGGER managed_oidc_clients AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON oidc_clients
    FOR EACH STATEMENT EXECUTE FUNCTION portico_managed_change();
CREATE TRIGGER managed_notification_settings AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON notification_settings
    FOR EACH STATEMENT EXECUTE FUNCTION portico_managed_change();
CREATE TRIGGER managed_logins_password_removed AFTER UPDATE OF password_hash ON logins
    FOR EACH ROW WHEN (OLD.password_hash IS NOT NULL AND NEW.password_hash IS NULL)
    EXECUTE FUNCTION portico_managed_change();
