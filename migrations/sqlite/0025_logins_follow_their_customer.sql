-- A customer's logins go with it even when foreign keys are not enforced. portico's own
-- connections enforce them (`ON DELETE CASCADE` removes the logins), but the sqlite3 shell and
-- most tools do not by default: a customer deleted by hand there left its logins behind, rows
-- no customer owns, which no plan shows (the live state is built from customers) and which
-- made the next apply that created that customer again, or gave one of their emails to
-- another login, fail on a unique key. The trigger does what the foreign key declares, under
-- any connection; logins left behind before are removed once here.

DELETE FROM logins WHERE customer_id NOT IN (SELECT id FROM customers);

CREATE TRIGGER logins_follow_their_customer AFTER DELETE ON customers
BEGIN
    DELETE FROM logins WHERE customer_id = OLD.id;
END;
