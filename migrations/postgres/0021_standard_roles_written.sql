-- The standard roles as last written (issue #26): every apply wrote the catalog's standard
-- roles again (a third of a 10-login apply's statements on PostgreSQL). An apply now records
-- a digest of the rows it left and the write count `n` after it; the next apply rewrites
-- them only when either differs: another build's catalog, or any write to `roles` or
-- `role_permissions` since (every one raises `n`). NULL until the first apply.

ALTER TABLE managed_changes ADD COLUMN roles_digest bytea;
ALTER TABLE managed_changes ADD COLUMN roles_at bigint;

-- An apply counts its own writes once, at its end: the triggers that count every write to a
-- managed column are skipped inside an apply's transaction, which says so with the
-- transaction-local setting `portico.applying` (set with its first read). Running them there
-- only cost time: the first call of the trigger function in a connection compiles it (about
-- 2 ms of a 10-login apply). Every other writer is counted as before; one that sets the
-- setting itself hides its writes as surely as one that writes `managed_changes`.

DROP TRIGGER managed_features ON features;
CREATE TRIGGER managed_features AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON features
    FOR EACH STATEMENT WHEN (current_setting('portico.applying', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION portico_managed_change();
DROP TRIGGER managed_login_policy ON login_policy;
CREATE TRIGGER managed_login_policy AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON login_policy
    FOR EACH STATEMENT WHEN (current_setting('portico.applying', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION portico_managed_change();
DROP TRIGGER managed_websites ON websites;
CREATE TRIGGER managed_websites AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON websites
    FOR EACH STATEMENT WHEN (current_setting('portico.applying', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION portico_managed_change();
DROP TRIGGER managed_roles ON roles;
CREATE TRIGGER managed_roles AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON roles
    FOR EACH STATEMENT WHEN (current_setting('portico.applying', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION portico_managed_change();
DROP TRIGGER managed_role_permissions ON role_permissions;
CREATE TRIGGER managed_role_permissions AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON role_permissions
    FOR EACH STATEMENT WHEN (current_setting('portico.applying', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION portico_managed_change();
DROP TRIGGER managed_customers ON customers;
CREATE TRIGGER managed_customers AFTER INSERT OR DELETE OR UPDATE OF id, name, protect OR TRUNCATE ON customers
    FOR EACH STATEMENT WHEN (current_setting('portico.applying', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION portico_managed_change();
DROP TRIGGER managed_logins ON logins;
CREATE TRIGGER managed_logins AFTER INSERT OR DELETE OR UPDATE OF customer_id, contact, email, name, access, role_id, website_id, notify, password_marker, expires_at OR TRUNCATE ON logins
    FOR EACH STATEMENT WHEN (current_setting('portico.applying', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION portico_managed_change();
DROP TRIGGER managed_policies ON policies;
CREATE TRIGGER managed_policies AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON policies
    FOR EACH STATEMENT WHEN (current_setting('portico.applying', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION portico_managed_change();
DROP TRIGGER managed_oidc_clients ON oidc_clients;
CREATE TRIGGER managed_oidc_clients AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON oidc_clients
    FOR EACH STATEMENT WHEN (current_setting('portico.applying', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION portico_managed_change();
DROP TRIGGER managed_notification_settings ON notification_settings;
CREATE TRIGGER managed_notification_settings AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON notification_settings
    FOR EACH STATEMENT WHEN (current_setting('portico.applying', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION portico_managed_change();
DROP TRIGGER managed_logins_password_removed ON logins;
CREATE TRIGGER managed_logins_password_removed AFTER UPDATE OF password_hash ON logins
    FOR EACH ROW WHEN (OLD.password_hash IS NOT NULL AND NEW.password_hash IS NULL
        AND current_setting('portico.applying', true) IS DISTINCT FROM 'on')
    EXECUTE FUNCTION portico_managed_change();
