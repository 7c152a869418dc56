-- Email delivery (DESIGN §3): notification settings gain an SMTP transport beside the
-- webhook, sender and reply-to addresses, an attempt budget and the message templates; a
-- message that exhausts its budget, or is refused for good, is `failed` (dead letter).

ALTER TABLE notification_settings ALTER COLUMN url DROP NOT NULL;
ALTER TABLE notification_settings
    ADD COLUMN smtp_url          TEXT,
    ADD COLUMN smtp_username     TEXT,
    ADD COLUMN smtp_password_env TEXT,
    ADD COLUMN from_address      TEXT,
    ADD COLUMN reply_to          TEXT,
    ADD COLUMN max_attempts      BIGINT NOT NULL DEFAULT 10 CHECK (max_attempts > 0),
    ADD COLUMN template_subject  TEXT,
    ADD COLUMN template_text     TEXT,
    ADD COLUMN template_html     TEXT,
    ADD CONSTRAINT notification_settings_one_transport CHECK ((url IS NULL) <> (smtp_url IS NULL));

ALTER TABLE notifications DROP CONSTRAINT notifications_status_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_status_check
    CHECK (status IN ('pending', 'sent', 'cancelled', 'failed'));
