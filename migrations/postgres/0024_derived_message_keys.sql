-- Queued messages in less room again (issue #26; see the SQLite migration of the same
-- number): a message queued from now on stores no idempotency key (it is derived when read
-- from this store's random id and the message's id), and a contact's message no email when
-- it is the contact's own. Messages queued before keep their key; their email is NULL where
-- it equals the contact.

ALTER TABLE notifications
    ALTER COLUMN idempotency_key DROP NOT NULL,
    ALTER COLUMN email DROP NOT NULL;
UPDATE notifications SET email = NULL WHERE email = contact;
