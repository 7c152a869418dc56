//! PostgreSQL-only behaviour: a SELECT-only role, a connection killed mid-apply, and
//! connection errors that never print the password.

use std::time::{Duration, Instant};

use crate::common::{ACCOUNT, Env, run};

/// `url` with other credentials.
fn with_user(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (_, host) = rest.split_once('@').unwrap();
    format!("{scheme}://{user}:{password}@{host}")
}

#[test]
fn a_select_only_role_can_plan_and_cannot_apply() {
    let env = Env::postgres();
    env.write("account.yaml", ACCOUNT);
    env.apply();
    let user = format!("reader_{}", std::process::id());
    env.sql(&format!(
        "CREATE ROLE {user} LOGIN PASSWORD 'reader-pw-1';
         GRANT SELECT ON ALL TABLES IN SCHEMA public TO {user};"
    ));
    let reader = with_user(&env.url, &user, "reader-pw-1");
    env.write("account.yaml", &ACCOUNT.replace("Acme Ltd", "Acme Limited"));
    let before = env.dump();

    let (code, out, err) = run(env.portico(&[
        "plan",
        "-f",
        "manifests",
        "--detailed-exitcode",
        "--database",
        &reader,
    ]));
    assert_eq!(code, 2, "{err}");
    assert!(out.contains("name : Acme Ltd → Acme Limited"), "{out}");

    let (code, _, err) = run(env.portico(&[
        "apply",
        "-f",
        "manifests",
        "--auto-approve",
        "--database",
        &reader,
    ]));
    assert_eq!(code, 1);
    assert!(err.contains("permission denied"), "{err}");
    assert!(!err.contains("reader-pw-1"), "{err}");
    assert_eq!(before, env.dump());
}

#[test]
fn a_connection_killed_mid_apply_leaves_the_database_as_before() {
    let env = Env::postgres();
    env.write("account.yaml", ACCOUNT);
    env.apply();
    // Make the apply pause inside its transaction, after earlier batches have run.
    env.sql(
        "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF NEW.email = 'slow@beta.example' THEN PERFORM pg_sleep(30); END IF; RETURN NEW; END $$;
         CREATE TRIGGER slow BEFORE INSERT ON logins FOR EACH ROW EXECUTE FUNCTION slow();",
    );
    let before = env.dump();
    let next = ACCOUNT.replace("name: Acme Ltd", "name: Acme Limited")
        + "    contacts:\n      - email: slow@beta.example\n        access: true\n        notify: true\n";
    env.write("account.yaml", &next);
    let child = std::process::Command::new(assert_cmd::cargo::cargo_bin("portico"))
        .args([
            "apply",
            "-f",
            "manifests",
            "--auto-approve",
            "--database",
            &env.url,
        ])
        .current_dir(env.dir.path())
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let database = env.url.rsplit('/').next().unwrap().to_string();
    loop {
        let waiting = env.rows(&format!(
            "SELECT pid::text FROM pg_stat_activity WHERE datname = '{database}' AND application_name LIKE 'portico%'
             AND query LIKE 'INSERT INTO logins%' AND state = 'active'"
        ));
        if let Some(pid) = waiting.first() {
            env.sql(&format!("SELECT pg_terminate_backend({pid})"));
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the apply never reached the slow insert"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("error:"), "{err}");
    assert_eq!(
        before,
        env.dump(),
        "nothing of the interrupted apply may remain"
    );
}

#[test]
fn connection_errors_are_clear_and_hide_the_password() {
    let env = Env::postgres();
    env.write("account.yaml", ACCOUNT);
    let wrong_password = with_user(&env.url, "postgres", "not-the-password");
    let (code, _, err) =
        run(env.portico(&["plan", "-f", "manifests", "--database", &wrong_password]));
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot open database postgres://postgres:***@"),
        "{err}"
    );
    assert!(err.contains("password authentication failed"), "{err}");
    assert!(!err.contains("not-the-password"), "{err}");

    let (base, _) = env.url.rsplit_once('/').unwrap();
    let missing = format!("{base}/no_such_database");
    let (code, _, err) = run(env.portico(&["plan", "-f", "manifests", "--database", &missing]));
    assert_eq!(code, 1);
    assert!(err.contains("does not exist"), "{err}");

    let refused = "postgres://u:secret-pw@127.0.0.1:1/db";
    let (code, _, err) = run(env.portico(&["plan", "-f", "manifests", "--database", refused]));
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot open database postgres://u:***@127.0.0.1:1/db"),
        "{err}"
    );
    assert!(!err.contains("secret-pw"), "{err}");
}

#[test]
fn init_works_on_an_empty_database() {
    let env = Env::postgres();
    env.portico(&["init"]).assert().success();
    assert_eq!(
        env.rows("SELECT id FROM roles WHERE standard"),
        ["customer_center"]
    );
    env.portico(&["init"]).assert().success();
}

/// `customers` customers, each with its own login and one contact.
fn many_customers(customers: usize, name: &str) -> String {
    let mut yaml = String::from("customers:\n");
    for i in 0..customers {
        yaml.push_str(&format!(
            "  - id: C{i:05}\n    name: {name} {i}\n    email: c{i}@x.example\n    contacts:\n      - {{ email: a{i}@x.example, name: Ann {i} }}\n"
        ));
    }
    yaml
}

/// The keys and indexes of the tables a large apply may fill with them set aside: one
/// line per key or index with its definition and whether it is valid.
const KEYS: &str = "SELECT t || ' ' || name || ' ' || def FROM (
        SELECT conrelid::regclass::text AS t, conname AS name,
               pg_get_constraintdef(oid) || ' ' || convalidated::text AS def
        FROM pg_constraint
        WHERE conrelid IN ('logins'::regclass, 'notifications'::regclass, 'applied_objects'::regclass)
        UNION ALL
        SELECT indrelid::regclass::text, indexrelid::regclass::text,
               pg_get_indexdef(indexrelid) || ' ' || indisvalid::text
        FROM pg_index
        WHERE indrelid IN ('logins'::regclass, 'notifications'::regclass, 'applied_objects'::regclass)
    ) AS k ORDER BY 1";

/// Each index of `table` with its object id (a rebuilt index has a new one).
fn index_ids(env: &Env, table: &str) -> Vec<String> {
    env.rows(&format!(
        "SELECT indexrelid::regclass::text || ' ' || indexrelid::oid::text FROM pg_index
         WHERE indrelid = '{table}'::regclass ORDER BY 1"
    ))
}

/// Whether every index of `table` was built again since `before` was taken.
fn rebuilt(env: &Env, table: &str, before: &[String]) -> bool {
    let after = index_ids(env, table);
    after.len() == before.len() && after.iter().all(|index| !before.contains(index))
}

#[test]
fn a_large_first_apply_builds_each_index_once_and_keeps_them_all() {
    let env = Env::postgres();
    env.portico(&["init"]).assert().success();
    let migrated = env.rows(KEYS);
    assert!(migrated.len() >= 10, "{migrated:?}");
    let ids: Vec<Vec<String>> = ["logins", "notifications"]
        .iter()
        .map(|t| index_ids(&env, t))
        .collect();

    // 12,000 logins (each with its drift digest) and 12,000 messages into empty tables.
    let notify = "features: { customer_access: true }\n\
        notifications: { url: http://127.0.0.1:9/x, login_url: https://p.example/login }\n";
    let customers = many_customers(6_000, "Customer")
        .replace(
            "    contacts:",
            "    access: { give_access: true, notify: true }\n    contacts:",
        )
        .replace("name: Ann", "access: true, notify: true, name: Ann");
    env.write("account.yaml", &format!("{notify}{customers}"));
    let out = env.apply();
    assert!(out.contains("Apply complete: 12001 created"), "{out}");
    assert!(out.contains("12000 notification(s) queued"), "{out}");

    assert_eq!(
        env.rows(KEYS),
        migrated,
        "the keys and indexes are back as they were, valid"
    );
    for (table, before) in ["logins", "notifications"].iter().zip(&ids) {
        assert!(
            rebuilt(&env, table, before),
            "{table}'s indexes were set aside and built once"
        );
    }
    assert_eq!(env.rows("SELECT count(*)::text FROM logins"), ["12000"]);
    assert_eq!(
        env.rows("SELECT count(*)::text FROM notifications"),
        ["12000"]
    );
    let (code, _, err) = env.plan(&["--detailed-exitcode"]);
    assert_eq!(code, 0, "{err}");

    // The rebuilt keys work: a second login with an email, or a second message with an id,
    // is refused; deleting a customer by hand still cascades to its logins.
    let refused = |sql: &str| {
        let sql = sqlx::AssertSqlSafe(sql.to_string());
        crate::common::block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&env.url).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut conn).await.is_err()
        })
    };
    assert!(refused(
        "UPDATE logins SET email = 'a1@x.example' WHERE customer_id = 'C00002' AND contact = ''"
    ));
    assert!(refused(
        "INSERT INTO notifications (id, idempotency_key, created_at, customer_id, contact, email, password_assigned, status)
         SELECT id, idempotency_key, created_at, customer_id, contact, email, password_assigned, status
         FROM notifications LIMIT 1"
    ));
    assert!(refused(
        "INSERT INTO applied_objects (address, digest) SELECT address, digest FROM applied_objects LIMIT 1"
    ));
    env.sql("DELETE FROM customers WHERE id = 'C00042'");
    assert_eq!(
        env.rows("SELECT count(*)::text FROM logins WHERE customer_id = 'C00042'"),
        ["0"]
    );
}

#[test]
fn a_large_apply_into_a_used_account_sets_aside_only_what_it_may() {
    let env = Env::postgres();
    env.write("account.yaml", &many_customers(2, "Small"));
    env.apply();
    let migrated = env.rows(KEYS);
    let logins = index_ids(&env, "logins");

    // 11,996 new logins into a table of 4: set aside.
    env.write("account.yaml", &many_customers(6_000, "Customer"));
    let out = env.apply();
    assert!(
        out.contains("Apply complete: 11996 created, 2 updated"),
        "{out}"
    );
    assert_eq!(env.rows(KEYS), migrated);
    assert!(rebuilt(&env, "logins", &logins));
    let (code, _, err) = env.plan(&["--detailed-exitcode"]);
    assert_eq!(code, 0, "{err}");

    // As many again: the table holds as many as are added, so they go in row by row.
    let logins = index_ids(&env, "logins");
    env.write("account.yaml", &many_customers(12_000, "Customer"));
    let out = env.apply();
    assert!(out.contains("Apply complete: 12000 created"), "{out}");
    assert_eq!(index_ids(&env, "logins"), logins);
    assert_eq!(env.rows("SELECT count(*)::text FROM logins"), ["24000"]);
    let (code, _, err) = env.plan(&["--detailed-exitcode"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn a_role_that_may_not_alter_the_tables_writes_a_large_apply_row_by_row() {
    let env = Env::postgres();
    env.portico(&["init"]).assert().success();
    let user = format!("writer_{}", std::process::id());
    env.sql(&format!(
        "CREATE ROLE {user} LOGIN PASSWORD 'writer-pw-1';
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {user};
         GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {user};
         GRANT CREATE ON SCHEMA public TO {user};"
    ));
    let logins = index_ids(&env, "logins");
    env.write("account.yaml", &many_customers(6_000, "Customer"));
    let writer = with_user(&env.url, &user, "writer-pw-1");
    let (code, out, err) = run(env.portico(&[
        "apply",
        "-f",
        "manifests",
        "--auto-approve",
        "--database",
        &writer,
    ]));
    env.sql(&format!("DROP OWNED BY {user}; DROP ROLE {user}"));
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Apply complete: 12000 created"), "{out}");
    assert_eq!(index_ids(&env, "logins"), logins, "nothing was set aside");
    let (code, _, err) = env.plan(&["--detailed-exitcode"]);
    assert_eq!(code, 0, "{err}");
}

/// Each test's database goes when the test ends (also a failing one): a suite run made a
/// hundred databases of ~8 MB plus their WAL and filled the CI machine's disk.
#[test]
fn a_test_database_is_dropped_with_its_test() {
    let admin = crate::common::postgres_admin_url();
    let exists = |name: &str| -> i64 {
        crate::common::block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
            sqlx::query_scalar("SELECT count(*) FROM pg_database WHERE datname = $1")
                .bind(name)
                .fetch_one(&mut conn)
                .await
                .unwrap()
        })
    };
    let env = Env::postgres();
    env.write("account.yaml", ACCOUNT);
    env.apply();
    let name = env.url.rsplit_once('/').unwrap().1.to_string();
    assert_eq!(exists(&name), 1);
    drop(env);
    assert_eq!(exists(&name), 0);

    let env = Env::postgres();
    let name = env.url.rsplit_once('/').unwrap().1.to_string();
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        let _env = env;
        panic!("a failing test");
    }));
    assert!(failed.is_err());
    assert_eq!(exists(&name), 0);
}
