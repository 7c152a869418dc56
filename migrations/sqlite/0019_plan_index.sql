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
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    n     BIGINT NOT NULL,
    store TEXT NOT NULL
);

INSERT INTO managed_changes (id, n, store)
SELECT 1, CASE WHEN EXISTS (SELECT 1 FROM features) OR EXISTS (SELECT 1 FROM login_policy) OR EXISTS (SELECT 1 FROM websites) OR EXISTS (SELECT 1 FROM role_permissions) OR EXISTS (SELECT 1 FROM customers) OR EXISTS (SELECT 1 FROM logins) OR EXISTS (SELECT 1 FROM policies) OR EXISTS (SELECT 1 FROM oidc_clients) OR EXISTS (SELECT 1 FROM notification_settings) OR EXISTS (SELECT 1 FROM roles WHERE NOT standard) THEN 1 ELSE 0 END, lower(hex(randomblob(16)));

CREATE TABLE plan_index (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    -- `managed_changes.n` as the apply that recorded it left it
    changes BIGINT NOT NULL,
    -- the index itself: deflated JSON (src/state/index.rs)
    body    BLOB NOT NULL
);

-- Logins with an expiry, for a plan's "expires soon" warnings without reading them all.
CREATE INDEX logins_expiry ON logins (expires_at) WHERE expires_at IS NOT NULL;

CREATE TRIGGER managed_features_insert AFTER INSERT ON features BEGIN UPDATE managed_changes SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER managed_features_delete AFTER DELETE ON features BEGIN UPDATE managed_changes SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER managed_features_update AFTER UPDATE ON features BEGIN UPDATE managed_changes SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER managed_login_policy_insert AFTER INSERT ON login_policy BEGIN UPDATE managed_changes SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER managed_login_policy_delete AFTER DELETE ON login_policy BEGIN UPDATE managed_changes SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER managed_login_policy_update AFTER UPDATE ON login_policy BEGIN UPDATE managed_changes SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER managed_websites_insert AFTER INSERT ON websites BEGIN UPDATE managed_changes SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER managed_websites_delete AFTER DELETE ON websites BEGIN UPDATE managed_changes SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER managed_websites_update AFTER UPDATE ON websites BEGIN UPDATE managed_changes SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER managed_roles_insert AFTER INSERT ON roles BEGIN UPDATE managed_changes SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER managed_roles_delete AFTER DELETE ON roles BEGIN UPDATE managed_changes SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER managed_roles_update AFTER UPDATE ON roles BEGIN UPDATE managed_changes SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER managed_role_permissions_insert AFTER INSERT ON role_permissions BEGIN UPDATE managed_changes SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER managed_role_permissions_delete AFTER DELETE ON role_permissions BEGIN UPDATE managed_changes SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER managed_role_permissions_update AFTER UPDATE ON role_permissions BEGIN UPDATE managed_changes SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER managed_customers_insert AFTER INSERT ON customers BEGIN UPDATE managed_changes SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER managed_customers_delete AFTER DELETE ON customers BEGIN UPDATE managed_changes SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER managed_customers_update AFTER UPDATE OF id, name, protect ON customers BEGIN UPDATE managed_changes SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER managed_logins_insert AFTER INSERT ON logins BEGIN UPDATE managed_changes SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER managed_logins_delete AFTER DELETE ON logins BEGIN UPDATE managed_changes SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER managed_logins_update AFTER UPDATE OF customer_id, contact, email, name, access, role_id, website_id, notify, password_marker, expires_at ON logins BEGIN UPDATE managed_changes SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER managed_policies_insert AFTER INSERT ON policies BEGIN UPDATE managed_changes SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER managed_policies_delete AFTER DELETE ON policies BEGIN UPDATE managed_changes SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER managed_policies_update AFTER UPDATE ON policies BEGIN UPDATE managed_changes SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER managed_oidc_clients_insert AFTER INSERT ON oidc_clients BEGIN UPDATE managed_changes SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER managed_oidc_clients_delete AFTER DELETE ON oidc_clients BEGIN UPDATE managed_changes SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER managed_oidc_clients_update AFTER UPDATE ON oidc_clients BEGIN UPDATE managed_changes SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER managed_notification_settings_insert AFTER INSERT ON notification_settings BEGIN UPDATE managed_changes SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER managed_notification_settings_delete AFTER DELETE ON notification_settings BEGIN UPDATE managed_changes SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER managed_notification_settings_update AFTER UPDATE ON notification_settings BEGIN UPDATE managed_changes SET n = n + 1 WHERE id = 1; END;
CREATE TRIGGER managed_logins_password_removed AFTER UPDATE OF password_hash ON logins
    WHEN OLD.password_hash IS NOT NULL AND NEW.password_hash IS NULL
    BEGIN UPDATE managed_changes SET n = n + 1 WHERE id = 1; END;
