-- See the SQLite migration of the same number: there a customer deleted by hand with foreign
-- keys off left its logins behind. PostgreSQL always enforces the foreign key (`ON DELETE
-- CASCADE`), so no trigger is needed; logins left without their customer (the constraint
-- dropped or set aside by hand) are removed once, as on SQLite. Only when there are any: the
-- write count's triggers here are per statement, and an empty delete would raise it too.

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM logins l WHERE NOT EXISTS (SELECT 1 FROM customers c WHERE c.id = l.customer_id)) THEN
        DELETE FROM logins l WHERE NOT EXISTS (SELECT 1 FROM customers c WHERE c.id = l.customer_id);
    END IF;
END $$;
