//! Databases made by earlier versions of portico: brought up to date by the next command
//! that writes, with nothing they hold lost.

use std::path::Path;

use sqlx::Connection as _;

use crate::common::{ACCOUNT, Env, block_on};

/// The schema of `migrations/<engine>/` up to `version`, as an earlier release left it.
fn migrate_to(env: &Env, engine: &str, version: i64) {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(engine);
    block_on(async {
        let migrator = sqlx::migrate::Migrator::new(folder).await.unwrap();
        if env.is_sqlite() {
            let options = env
                .url
                .parse::<sqlx::sqlite::SqliteConnectOptions>()
                .unwrap();
            let mut conn = sqlx::SqliteConnection::connect_with(&options.create_if_missing(true))
                .await
                .unwrap();
            migrator.run_to(version, &mut conn).await.unwrap();
        } else {
            let mut conn = sqlx::PgConnection::connect(&env.url).await.unwrap();
            migrator.run_to(version, &mut conn).await.unwrap();
        }
    });
}

crate::common::on_every_engine!(the_compact_bookkeeping_keeps_every_digest_and_message);

/// Migration 0016 rebuilds `applied_objects` (SQLite: WITHOUT ROWID) and `notifications`
/// (no unique index on the idempotency key) and drops two login indexes: the rows they held
/// before are all there after, and the next apply works on them.
fn the_compact_bookkeeping_keeps_every_digest_and_message(env: Env) {
    let engine = if env.is_sqlite() {
        "sqlite"
    } else {
        "postgres"
    };
    migrate_to(&env, engine, 15);
    env.sql(
        "INSERT INTO applied_objects (address, digest, apply_id) VALUES
            ('role[\"gone\"]', '0123456789abcdef', NULL);
         INSERT INTO notifications (idempotency_key, created_at, customer_id, contact, email,
            password_assigned, status, attempts, last_error, kind)
         VALUES ('0123456789abcdef0123456789abcdef', '2026-01-01T00:00:00Z', 'C9', '', 'old@x.example',
            false, 'failed', 3, 'refused', 'new_access'),
            ('k-before', '2026-01-02T03:04:05Z', 'C9', 'a@x.example', 'a@x.example', false,
            'pending', 0, NULL, 'reset')",
    );
    // `init` brings the schema up to date (and writes the standard roles, as the earlier
    // release's `init` had), then an apply writes on it.
    env.portico(&["init"]).assert().success();
    env.write("account.yaml", ACCOUNT);
    let out = env.apply();
    assert!(out.contains("Apply complete"), "{out}");
    assert_eq!(
        env.rows("SELECT digest FROM applied_objects WHERE address = 'role[\"gone\"]'"),
        ["0123456789abcdef"]
    );
    // Migration 0018 keeps each message, its key as bytes, its time as seconds, its status
    // and kind as numbers; 0024 keeps the keys stored and drops the email a contact's
    // message repeats; what portico shows of them is as before.
    assert_eq!(
        env.rows("SELECT contact FROM notifications WHERE customer_id = 'C9' AND email IS NULL"),
        ["a@x.example"]
    );
    assert_eq!(
        env.rows(&format!(
            "SELECT coalesce(email, contact) || ' ' || {} || ' ' || CAST(status AS TEXT) || ' ' || CAST(kind AS TEXT)
                || ' ' || CAST(created_at AS TEXT) || ' ' || CAST(attempts AS TEXT)
             FROM notifications WHERE customer_id = 'C9' ORDER BY coalesce(email, contact)",
            env.hex("idempotency_key")
        )),
        [
            "a@x.example 6b2d6265666f7265 0 1 1767323045 0",
            "old@x.example 0123456789abcdef0123456789abcdef 3 0 1767225600 3"
        ]
    );
    let old = crate::common::outbox_message(&env, "email", "old@x.example");
    assert_eq!(old["idempotency_key"], "0123456789abcdef0123456789abcdef");
    assert_eq!(old["created_at"], "2026-01-01T00:00:00Z");
    assert_eq!(old["status"], "failed");
    assert_eq!(old["kind"], "new_access");
    let contact = crate::common::outbox_message(&env, "contact", "a@x.example");
    assert_eq!(contact["email"], "a@x.example", "{contact}");
    assert_eq!(contact["idempotency_key"], "6b2d6265666f7265", "{contact}");
    // The apply recorded its own objects beside the old row.
    let applied = env.rows("SELECT CAST(count(*) AS TEXT) FROM applied_objects");
    assert!(applied[0].parse::<i64>().unwrap() > 3, "{applied:?}");
    let (code, _, err) = env.plan(&["--detailed-exitcode"]);
    assert_eq!(code, 0, "{err}");
    if env.is_sqlite() {
        let schema = env.rows("SELECT sql FROM sqlite_master WHERE name = 'applied_objects'");
        assert!(schema[0].contains("WITHOUT ROWID"), "{schema:?}");
        let indexes = env.rows(
            "SELECT name FROM sqlite_master WHERE type = 'index'
             AND tbl_name IN ('notifications', 'logins') ORDER BY name",
        );
        assert_eq!(
            indexes,
            [
                "logins_expiry",
                "notifications_status",
                "sqlite_autoindex_logins_1",
                "sqlite_autoindex_logins_2"
            ]
        );
    } else {
        let indexes = env.rows(
            "SELECT indexrelid::regclass::text FROM pg_index
             WHERE indrelid IN ('notifications'::regclass, 'logins'::regclass) ORDER BY 1",
        );
        assert_eq!(
            indexes,
            [
                "logins_email_key",
                "logins_expiry",
                "logins_pkey",
                "notifications_pkey",
                "notifications_status"
            ]
        );
    }
}

crate::common::on_every_engine!(drift_digests_move_into_the_login_rows);

/// An address as portico writes it, for ids without invisible characters: `"` and `\`
/// backslashed (written here apart from portico's own code, to check the migration's SQL).
fn login_address(customer: &str, contact: &str) -> String {
    let key = |id: &str| format!("\"{}\"", id.replace('\\', "\\\\").replace('"', "\\\""));
    match contact {
        "" => format!("customer[{}]", key(customer)),
        _ => format!("customer[{}].contact[{}]", key(customer), key(contact)),
    }
}

/// Migration 0017 moves each login's drift digest from `applied_objects` (keyed by address)
/// into its row. A database laid out as version 16 left it (rebuilt here from one written
/// now, with a customer id holding a quote and a backslash) gets every digest back into the
/// right row, keeps the other objects', and plans no change; labels still tell an edit made
/// outside portico from one in the manifests.
fn drift_digests_move_into_the_login_rows(env: Env) {
    let account = format!(
        "{ACCOUNT}  - id: 'Q\"1\\b'\n    name: Quoted\n    email: q@q.example\n    access: {{ give_access: true, notify: true }}\n"
    );
    env.write("account.yaml", &account);
    env.apply();
    let logins = "SELECT customer_id || '|' || contact || '|' || CAST(applied_digest AS TEXT)
        || '|' || CAST(applied_apply_id AS TEXT) FROM logins ORDER BY customer_id, contact";
    let written = env.rows(logins);
    assert!(written.len() >= 4, "{written:?}");
    assert!(
        written.iter().any(|r| r.starts_with("Q\"1\\b||")),
        "{written:?}"
    );
    let others = env.rows("SELECT address FROM applied_objects ORDER BY address");
    assert!(
        !others.is_empty() && others.iter().all(|a| !a.starts_with("customer[")),
        "{others:?}"
    );

    // Back to version 16's layout: the digests in `applied_objects`, none in the rows.
    let mut sql = String::new();
    for row in &written {
        let [customer, contact, digest, apply]: [&str; 4] =
            row.split('|').collect::<Vec<_>>().try_into().unwrap();
        let hex = format!("{:016x}", digest.parse::<i64>().unwrap().cast_unsigned());
        sql.push_str(&format!(
            "INSERT INTO applied_objects (address, digest, apply_id) VALUES ('{}', '{hex}', {apply});\n",
            login_address(customer, contact).replace('\'', "''")
        ));
    }
    if env.is_sqlite() {
        sql.push_str(
            "ALTER TABLE logins DROP COLUMN applied_digest;
             ALTER TABLE logins DROP COLUMN applied_apply_id;",
        );
    } else {
        sql.push_str(
            "ALTER TABLE logins DROP COLUMN applied_digest, DROP COLUMN applied_apply_id;",
        );
    }
    sql.push_str("DELETE FROM _sqlx_migrations WHERE version = 17;");
    env.sql(&sql);

    env.portico(&["init"]).assert().success();
    assert_eq!(env.rows(logins), written, "every digest back in its row");
    assert_eq!(
        env.rows("SELECT address FROM applied_objects ORDER BY address"),
        others
    );
    let (code, out, err) = env.plan(&["--detailed-exitcode"]);
    assert_eq!(code, 0, "{out}{err}");

    env.sql("UPDATE logins SET name = 'By Hand' WHERE contact = 'jane@acme.example'");
    env.write(
        "account.yaml",
        &account.replace("name: Quoted", "name: Quoted Ltd"),
    );
    let (_, out, _) = env.plan(&[]);
    assert!(
        out.contains(
            "~ update customer[\"CUST-0042\"].contact[\"jane@acme.example\"]  (changed outside portico)"
        ),
        "{out}"
    );
    assert!(
        out.contains("~ update customer[\"Q\\\"1\\\\b\"]\n"),
        "{out}"
    );
}

/// A customer deleted by hand with foreign keys off (the sqlite3 shell's default) takes its
/// logins with it, and the customer can be created again. Before migration 0025 its logins
/// stayed behind, owned by no customer and shown by no plan, and the apply that created the
/// customer again failed on a unique key (so did one giving their email to another login).
#[test]
fn a_customer_deleted_by_hand_takes_its_logins_and_can_come_back() {
    let env = Env::sqlite();
    env.write("account.yaml", ACCOUNT);
    env.apply();
    let by_hand = "PRAGMA foreign_keys = OFF; DELETE FROM customers WHERE id = 'CUST-0042'";
    env.sql(by_hand);
    let left = "SELECT CAST(count(*) AS TEXT) FROM logins WHERE customer_id = 'CUST-0042'";
    assert_eq!(env.rows(left), ["0"]);
    let out = env.apply();
    assert!(out.contains("+ create customer[\"CUST-0042\"]"), "{out}");
    assert!(out.contains("Apply complete"), "{out}");
    assert_eq!(env.rows(left), ["2"]);

    // Its email and its contact's go to a new customer in the next apply.
    env.sql(by_hand);
    let account = ACCOUNT.replace("id: CUST-0042", "id: CUST-0099");
    env.write("account.yaml", &account);
    let out = env.apply();
    assert!(out.contains("Apply complete"), "{out}");
    assert_eq!(
        env.rows("SELECT customer_id FROM logins WHERE email = 'jane@acme.example'"),
        ["CUST-0099"]
    );
}

/// Migration 0025 removes the logins a customer deleted by hand left behind before it, and
/// the apply that creates that customer again works.
#[test]
fn logins_left_behind_before_migration_0025_are_removed() {
    let env = Env::sqlite();
    migrate_to(&env, "sqlite", 24);
    env.write("account.yaml", ACCOUNT);
    env.sql(
        "PRAGMA foreign_keys = OFF;
         INSERT INTO logins (customer_id, contact, email, access, role_id, notify)
         VALUES ('CUST-0042', '', 'ap@acme.example', 1, 'customer_center', 1),
                ('CUST-0042', 'jane@acme.example', 'jane@acme.example', 1, 'customer_center', 1)",
    );
    let out = env.apply();
    assert!(out.contains("Apply complete"), "{out}");
    assert_eq!(
        env.rows("SELECT CAST(count(*) AS TEXT) FROM logins WHERE customer_id NOT IN (SELECT id FROM customers)"),
        ["0"]
    );
    assert_eq!(
        env.rows("SELECT group_concat(email, ' ') FROM (SELECT email FROM logins WHERE customer_id = 'CUST-0042' ORDER BY email)"),
        ["ap@acme.example jane@acme.example"]
    );
}

/// A customer's id changed by hand with foreign keys off leaves its logins filed under the
/// old id, which no customer has any more. The plan deletes the renamed customer and creates
/// the manifests' one again; the apply removes the logins left under that id before writing
/// its logins (the insert failed on them).
#[test]
fn a_customer_whose_id_was_changed_by_hand_is_applied_back() {
    let env = Env::sqlite();
    env.write("account.yaml", ACCOUNT);
    env.apply();
    env.sql(
        "PRAGMA foreign_keys = OFF; UPDATE customers SET id = 'CUST-9999' WHERE id = 'CUST-0042'",
    );
    let out = env.apply();
    assert!(out.contains("- delete customer[\"CUST-9999\"]"), "{out}");
    assert!(out.contains("+ create customer[\"CUST-0042\"]"), "{out}");
    assert!(out.contains("Apply complete"), "{out}");
    assert_eq!(
        env.rows("SELECT customer_id || ' ' || contact FROM logins WHERE customer_id LIKE 'CUST-00%' OR customer_id = 'CUST-9999' ORDER BY 1"),
        ["CUST-0042 ", "CUST-0042 jane@acme.example", "CUST-0043 "]
    );
    let (code, out, err) = env.plan(&["--detailed-exitcode"]);
    assert_eq!(code, 0, "{out}{err}");
}

crate::common::on_every_engine!(a_removed_logins_credentials_go_with_it);

/// A contact removed from the manifests takes its credentials and grants with it: sessions,
/// second factor, recovery codes, passkeys, set-password links, OpenID Connect codes, tokens
/// and subject id. Given back later under the same email (to someone else, perhaps), the
/// login starts with none of them (before migration 0026 the earlier holder's passkey still
/// signed in as it). The same when a customer is deleted by hand.
fn a_removed_logins_credentials_go_with_it(env: Env) {
    let with_tom = "  - id: CUST-0050\n    name: Gamma\n    email: g@gamma.example\n    \
                    access: { give_access: true, notify: true }\n    contacts:\n      \
                    - { email: tom@gamma.example, access: true, notify: true }\n";
    env.write("account.yaml", &format!("{ACCOUNT}{with_tom}"));
    env.apply();
    let credentials = |customer: &str, contact: &str| {
        format!(
            "INSERT INTO sessions (id_hash, customer_id, contact, created_at, last_seen_at, expires_at)
                 VALUES ('s-{contact}', '{customer}', '{contact}', '2026', '2026', '2099');
             INSERT INTO second_factors (customer_id, contact, secret_sealed) VALUES ('{customer}', '{contact}', 'x');
             INSERT INTO recovery_codes (code_hash, customer_id, contact) VALUES ('r-{contact}', '{customer}', '{contact}');
             INSERT INTO passkeys (credential_id, customer_id, contact, user_handle, name, passkey, created_at)
                 VALUES ('p-{contact}', '{customer}', '{contact}', 'h', 'n', 'k', '2026');
             INSERT INTO set_password_tokens (token_hash, notification_id, customer_id, contact, expires_at)
                 VALUES ('t-{contact}', 1, '{customer}', '{contact}', '2099');
             INSERT INTO oidc_subjects (customer_id, contact, sub) VALUES ('{customer}', '{contact}', 'sub-{contact}');"
        )
    };
    let held = |customer: &str, contact: &str| {
        [
            "sessions",
            "second_factors",
            "recovery_codes",
            "passkeys",
            "set_password_tokens",
            "oidc_subjects",
        ]
        .iter()
        .map(|table| {
            env.rows(&format!(
                "SELECT CAST(count(*) AS TEXT) FROM {table} WHERE customer_id = '{customer}' AND contact = '{contact}'"
            ))[0]
                .clone()
        })
        .collect::<Vec<_>>()
        .join(" ")
    };
    env.sql(&credentials("CUST-0050", "tom@gamma.example"));
    assert_eq!(held("CUST-0050", "tom@gamma.example"), "1 1 1 1 1 1");

    // Removed from the manifests: gone, and given back later, nothing is inherited.
    let without_tom = with_tom.replace(
        "    contacts:\n      - { email: tom@gamma.example, access: true, notify: true }\n",
        "",
    );
    env.write("account.yaml", &format!("{ACCOUNT}{without_tom}"));
    let out = env.apply();
    assert!(
        out.contains("- delete customer[\"CUST-0050\"].contact[\"tom@gamma.example\"]"),
        "{out}"
    );
    assert_eq!(held("CUST-0050", "tom@gamma.example"), "0 0 0 0 0 0");
    env.write("account.yaml", &format!("{ACCOUNT}{with_tom}"));
    env.apply();
    assert_eq!(held("CUST-0050", "tom@gamma.example"), "0 0 0 0 0 0");

    // A customer deleted by hand (on SQLite with foreign keys off, as the sqlite3 shell).
    env.sql(&credentials("CUST-0050", ""));
    let off = if env.is_sqlite() {
        "PRAGMA foreign_keys = OFF;"
    } else {
        ""
    };
    env.sql(&format!(
        "{off} DELETE FROM customers WHERE id = 'CUST-0050'"
    ));
    assert_eq!(held("CUST-0050", ""), "0 0 0 0 0 0");
}
