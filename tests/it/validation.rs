//! Every validation rule of DESIGN §2 through the real binary: message, location, exit code.

use crate::common::{Env, run};

/// Validates `text` as `manifests/a.yaml`; returns (exit code, stderr).
fn validate(text: &str) -> (i32, String) {
    let env = Env::new();
    env.write("a.yaml", text);
    let (code, _, err) = run(env.portico(&["validate", "-f", "manifests"]));
    (code, err)
}

/// Asserts that validation fails with `message` located at `line:col`.
#[track_caller]
fn fails(text: &str, message: &str, at: &str) {
    let (code, err) = validate(text);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(message), "expected {message:?} in:\n{err}");
    let location = format!("manifests/a.yaml:{at}");
    assert!(err.contains(&location), "expected {location} in:\n{err}");
}

const FEATURES: &str = "features:\n  customer_access: true\n  websites: true\n";

fn customer(access: &str) -> String {
    format!(
        "{FEATURES}customers:\n  - id: C1\n    name: One\n    email: one@x.example\n    access:\n{access}"
    )
}

#[test]
fn unknown_fields_are_located_with_a_hint() {
    let text = customer("      give_access: true\n      notify: true\n      rol: r1\n");
    fails(&text, "unknown field `rol`", "11:7");
    let (_, err) = validate(&text);
    assert!(err.contains("did you mean `role`?"), "{err}");
    assert!(err.contains("(customers[0].access.rol)"), "{err}");
}

#[test]
fn unknown_features_permissions_and_levels_get_hints() {
    fails(
        "features:\n  customer_acess: true\n",
        "unknown value `customer_acess`",
        "2:3",
    );
    let (_, err) = validate("features:\n  customer_acess: true\n");
    assert!(err.contains("did you mean `customer_access`?"), "{err}");
    let role = "roles:\n  - id: r1\n    name: R1\n    permissions:\n      invoic: view\n";
    fails(role, "unknown value `invoic`", "5:7");
    let level = "roles:\n  - id: r1\n    name: R1\n    permissions:\n      invoice: veiw\n";
    fails(level, "unknown value `veiw`", "5:16");
    let (_, err) = validate(level);
    assert!(err.contains("did you mean `view`?"), "{err}");
}

#[test]
fn wrong_types_and_missing_fields() {
    fails(
        &customer("      give_access: yes please\n"),
        "invalid type",
        "9:20",
    );
    fails(
        "websites:\n  - id: w\n    url: https://x.example\n",
        "missing field `name`",
        "2:5",
    );
}

#[test]
fn all_errors_of_a_run_are_reported_together() {
    let env = Env::new();
    env.write("a.yaml", "roles:\n  - id: r1\n    name: R1\n    bogus: 1\n");
    env.write("b/c.yml", "customers:\n  - id: C1\n    name: One\n    access:\n      role: nope\n  - id: C2\n    nme: Two\n");
    let (code, _, err) = run(env.portico(&["validate", "-f", "manifests"]));
    assert_eq!(code, 1);
    assert!(err.contains("manifests/a.yaml:4:5"), "{err}");
    assert!(err.contains("manifests/b/c.yml:7:5"), "{err}");
    assert!(err.contains("manifests/b/c.yml:5:13"), "{err}");
    assert!(
        err.contains("error: 3 errors in the manifests; nothing was changed"),
        "{err}"
    );
}

#[test]
fn yaml_syntax_errors_are_located() {
    fails(
        "customers:\n  - id: C1\n   name: bad indent\n",
        "YAML syntax",
        "3:",
    );
}

#[test]
fn objects_defined_twice_name_both_places() {
    let env = Env::new();
    env.write(
        "a.yaml",
        "websites:\n  - id: w\n    name: W\n    url: https://w.example\n",
    );
    env.write("b.yaml", "websites:\n  - id: w\n    name: W2\n    url: https://w.example\nlogin_policy: {}\n---\nlogin_policy: {}\n");
    let (code, _, err) = run(env.portico(&["validate", "-f", "manifests"]));
    assert_eq!(code, 1);
    assert!(
        err.contains("website `w` is defined twice; first defined at manifests/a.yaml:2:9"),
        "{err}"
    );
    assert!(err.contains("--> manifests/b.yaml:2:9"), "{err}");
    assert!(
        err.contains("section `login_policy` is defined twice"),
        "{err}"
    );
    fails(
        "features:\n  websites: true\n---\nfeatures:\n  websites: false\n",
        "feature `websites` is defined twice",
        "5:3",
    );
}

#[test]
fn references_must_resolve() {
    let roles = "roles:\n  - id: acme-center\n    name: Acme\n";
    let text = format!(
        "{roles}{}",
        customer("      give_access: true\n      notify: true\n      role: acme-centre\n")
            .replace(FEATURES, "")
    );
    let text = format!("{FEATURES}{text}");
    fails(&text, "role `acme-centre` is not defined", "14:13");
    assert!(validate(&text).1.contains("did you mean `acme-center`?"));
    fails(
        "roles:\n  - id: r\n    name: R\n    base: nope\n",
        "base role `nope` is not defined",
        "4:11",
    );
    let sites = "websites:\n  - id: store-eu\n    name: EU\n    url: https://eu.example\n";
    let text = format!(
        "{sites}{}",
        customer("      give_access: true\n      notify: true\n      website: store-ue\n")
    );
    fails(&text, "website `store-ue` is not defined", "15:16");
}

#[test]
fn standard_roles_cannot_be_redefined() {
    let text = "roles:\n  - id: customer_center\n    name: Mine\n";
    fails(
        text,
        "`customer_center` is a standard role and cannot be redefined",
        "2:9",
    );
    assert!(validate(text).1.contains("base: customer_center"));
}

#[test]
fn role_bases_must_not_form_a_cycle() {
    let text = "roles:\n  - id: a\n    name: A\n    base: b\n  - id: b\n    name: B\n    base: a\n";
    let (code, err) = validate(text);
    assert_eq!(code, 1);
    assert!(err.contains("role bases form a cycle"), "{err}");
}

#[test]
fn levels_cannot_exceed_the_permission_maximum() {
    let text = "roles:\n  - id: r\n    name: R\n    permissions:\n      invoice: full\n";
    fails(
        text,
        "`invoice` can be at most `view` for a customer-center role, not `full`",
        "5:16",
    );
}

#[test]
fn emails_must_be_valid_and_unique_case_insensitively() {
    fails(
        &customer("      give_access: false\n").replace("one@x.example", "not-an-email"),
        "`not-an-email` is not a valid email address",
        "7:12",
    );
    let text = customer("      give_access: true\n      notify: true\n")
        + "    contacts:\n      - email: ONE@X.example\n        access: false\n";
    fails(
        &text,
        "login email `one@x.example` is defined twice; first defined at manifests/a.yaml:7:12",
        "12:16",
    );
}

#[test]
fn access_needs_an_email_the_feature_and_a_way_to_log_in() {
    let no_email = format!(
        "{FEATURES}customers:\n  - id: C1\n    name: One\n    access:\n      give_access: true\n      notify: true\n"
    );
    fails(&no_email, "a login with access needs an email", "8:20");
    let no_feature = customer("      give_access: true\n      notify: true\n").replace(
        "  customer_access: true\n  websites: true\n",
        "  two_factor_authentication: true\n",
    );
    fails(
        &no_feature,
        "giving access needs the `customer_access` feature, which is off",
        "8:20",
    );
    let nobody = customer("      give_access: true\n");
    fails_plan(
        &nobody,
        "no password and no notification, so nobody could ever log in",
        "9:20",
    );
    let contact = customer("      give_access: false\n")
        + "    contacts:\n      - email: c@x.example\n        access: true\n";
    fails_plan(&contact, "nobody could ever log in", "12:17");
}

/// Asserts that plan (against an empty account) fails with `message` at `line:col`: for
/// rules that depend on the live database.
#[track_caller]
fn fails_plan(text: &str, message: &str, at: &str) {
    let env = Env::new();
    env.write("a.yaml", text);
    let (code, _, err) = env.plan(&[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(message), "expected {message:?} in:\n{err}");
    assert!(err.contains(&format!("manifests/a.yaml:{at}")), "{err}");
}

#[test]
fn a_login_that_already_has_access_needs_no_password_source() {
    // The exported form of an adopted account: access, no `password:`, no `notify`.
    let env = Env::new();
    env.write(
        "b.yaml",
        "notifications: { url: http://127.0.0.1:9/portico, login_url: https://c.example/login }\n",
    );
    env.write(
        "a.yaml",
        &customer("      give_access: true\n      notify: true\n"),
    );
    env.apply();
    env.write("a.yaml", &customer("      give_access: true\n"));
    let (code, out, err) = env.plan(&["--detailed-exitcode"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.contains("notify : true → false"), "{out}");
    let (code, _, err) = run(env.portico(&["validate", "-f", "manifests"]));
    assert_eq!(
        code, 0,
        "validate cannot know, so it leaves the rule to plan: {err}"
    );
}

#[test]
fn websites_and_two_factor_need_their_features() {
    let sites = "websites:\n  - id: w\n    name: W\n    url: https://w.example\n";
    let text = format!(
        "features:\n  customer_access: true\n{sites}customers:\n  - id: C1\n    name: One\n    email: one@x.example\n    access:\n      give_access: true\n      notify: true\n      website: w\n"
    );
    fails(
        &text,
        "assigning a website needs the `websites` feature, which is off",
        "14:16",
    );
    let role = "features:\n  customer_access: true\nroles:\n  - id: r\n    name: R\n    two_factor: required\n";
    fails(
        role,
        "needs the `two_factor_authentication` feature",
        "6:17",
    );
    fails(
        "features:\n  websites: true\n",
        "feature `websites` needs `customer_access`, which is off",
        "2:3",
    );
    fails(
        "features:\n  customer_access: true\n  websites: true\nwebsites:\n  - { id: w, name: W, url: \"\" }\n",
        "website url is empty",
        "5:28",
    );
}

#[test]
fn password_sources_are_checked_without_printing_them() {
    let env = Env::new();
    let text = customer("      give_access: true\n      password: { env: PORTICO_TEST_PW }\n")
        + "login_policy:\n  password: { min_length: 12 }\n";
    env.write("a.yaml", &text);
    let mut cmd = env.portico(&["validate", "-f", "manifests"]);
    cmd.env("PORTICO_TEST_PW", "short-secret");
    let (code, out, err) = run(cmd);
    assert_eq!(code, 0, "{err}");
    let mut cmd = env.portico(&["validate", "-f", "manifests"]);
    cmd.env("PORTICO_TEST_PW", "tiny-pw");
    let (code, out2, err) = run(cmd);
    assert_eq!(code, 1);
    assert!(
        err.contains("shorter than login_policy.password.min_length (12)"),
        "{err}"
    );
    assert!(!err.contains("tiny-pw") && !out2.contains("tiny-pw") && !out.contains("short-secret"));
    let (code, _, err) = run(env.portico(&["validate", "-f", "manifests"]));
    assert_eq!(code, 1);
    assert!(
        err.contains("environment variable `PORTICO_TEST_PW` is not set"),
        "{err}"
    );
    fails(
        &customer("      give_access: true\n      password: { file: missing.txt }\n"),
        "cannot read password file `missing.txt`",
        "10:25",
    );
}

#[test]
fn warnings_do_not_fail_validation() {
    let (code, err) = validate("roles:\n  - id: lonely\n    name: Lonely\ncustomers: []\n");
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning: role `lonely` is not used by any login"),
        "{err}"
    );
}

#[test]
fn unreadable_paths_are_errors_never_skipped() {
    let env = Env::new();
    let (code, _, err) = run(env.portico(&["validate", "-f", "does-not-exist"]));
    assert_eq!(code, 1);
    assert!(err.contains("does-not-exist does not exist"), "{err}");
    env.write("a.yaml", "customers: []\n");
    std::fs::write(env.path("manifests/bad.yaml"), [0xff, 0xfe, 0x00]).unwrap();
    let (code, _, err) = run(env.portico(&["validate", "-f", "manifests"]));
    assert_eq!(code, 1);
    assert!(err.contains("not valid UTF-8"), "{err}");
}

#[test]
fn hostile_yaml_is_refused_cleanly() {
    // The alias bomb sits inside a known section, so it is the reader's repetition limit
    // that refuses it, not an unknown section name.
    let mut bomb = String::from(
        "customers:\n  - id: C\n    name: N\n    contacts:\n      - &a {email: a@x.example}\n",
    );
    let names = ["a", "b", "c", "d", "e", "f", "g", "h"];
    for pair in names.windows(2) {
        let refs = vec![format!("*{}", pair[0]); 9].join(", ");
        bomb.push_str(&format!("      - &{} [{refs}]\n", pair[1]));
    }
    let (code, err) = validate(&bomb);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("repetition limit exceeded"), "{err}");
    let deep = format!("customers: {}{}\n", "[".repeat(5000), "]".repeat(5000));
    let (code, err) = validate(&deep);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("error"), "{err}");
}

/// Big accounts are checked in parallel chunks of customers: an email or a customer id used
/// again thousands of customers later (in another chunk, another file) is still found, with
/// both places named (the first use, also for a third use next to the second), and the
/// report is the same from run to run.
#[test]
fn duplicates_far_apart_in_a_big_account_are_found() {
    let env = Env::new();
    let mut first = String::from("features:\n  customer_access: true\ncustomers:\n");
    let mut second = String::from("customers:\n");
    for i in 0..6000 {
        let file = if i < 3000 { &mut first } else { &mut second };
        // Customers 5000 and 5990 reuse customer 10's email (their own login); customer
        // 5995 reuses the id of customer 20; contact 5999 reuses the email of contact 30.
        let email = if i == 5000 || i == 5990 { 10 } else { i };
        let id = if i == 5995 { 20 } else { i };
        let contact = if i == 5999 { 30 } else { i };
        file.push_str(&format!(
            "  - id: C{id}\n    name: N{i}\n    email: c{email}@x.example\n    contacts:\n      - {{ email: k{contact}@x.example }}\n"
        ));
    }
    env.write("a.yaml", &first);
    env.write("b.yaml", &second);
    let (code, _, err) = run(env.portico(&["validate", "-f", "manifests"]));
    assert_eq!(code, 1, "{err}");
    // Customer i's email is on line 6 + 5 * i of a.yaml, and 4 + 5 * (i - 3000) of b.yaml.
    let c10 =
        "login email `c10@x.example` is defined twice; first defined at manifests/a.yaml:56:12";
    assert_eq!(err.matches(c10).count(), 2, "{err}");
    assert!(err.contains("--> manifests/b.yaml:10004:12"), "{err}");
    assert!(err.contains("--> manifests/b.yaml:14954:12"), "{err}");
    assert!(
        err.contains("customer `C20` is defined twice; first defined at manifests/a.yaml:104:9"),
        "{err}"
    );
    assert!(
        err.contains("login email `k30@x.example` is defined twice"),
        "{err}"
    );
    assert!(err.contains("4 errors"), "{err}");
    let (_, _, again) = run(env.portico(&["validate", "-f", "manifests"]));
    assert_eq!(err, again);
    // On one core (`taskset`, util-linux) the chunks and the emails' shares are joined on
    // one thread: the findings are the same.
    let mut one_core = std::process::Command::new("taskset");
    let portico = env.std_command(&["validate", "-f", "manifests"]);
    one_core
        .args(["-c", "0"])
        .arg(portico.get_program())
        .args(portico.get_args())
        .current_dir(env.dir.path())
        .env("NO_COLOR", "1");
    let output = one_core.output().expect("taskset runs");
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&output.stderr), err);
}

/// The same mistake on thousands of logins is reported as the first 100 errors and a count
/// of the rest, at once (each shown error re-reads its document to find the line, so
/// showing 200,000 took hours), and the summary still counts them all.
#[test]
fn thousands_of_errors_show_the_first_hundred_and_a_count() {
    let env = Env::new();
    let mut text = String::from("features:\n  customer_access: true\ncustomers:\n");
    for i in 0..3000 {
        text.push_str(&format!(
            "  - id: C{i}\n    name: N{i}\n    email: not-an-email-{i}\n"
        ));
    }
    env.write("a.yaml", &text);
    let (code, _, err) = run(env.portico(&["validate", "-f", "manifests"]));
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        err.matches("is not a valid email address").count(),
        100,
        "{err}"
    );
    assert!(err.contains("`not-an-email-99`"), "{err}");
    assert!(!err.contains("`not-an-email-100`"), "{err}");
    assert!(
        err.contains("… and 2900 more errors not shown (the first 100 are above)"),
        "{err}"
    );
    assert!(err.contains("3000 errors in the manifests"), "{err}");
}

/// An expiry outside four-digit years is a located error in words (it was an internal
/// overflow message, or stored as `-001-12-31T…`).
/// Contacts inherit their customer's `expires`: each passed expiry is its own warning,
/// naming its login, never the same line twice.
#[test]
fn inherited_expiries_warn_once_per_login_by_name() {
    let (code, err) = validate(&format!(
        "{FEATURES}customers:\n  - id: C1\n    name: One\n    email: one@x.example\n    access: {{ give_access: true, notify: true, expires: 2020-01-01 }}\n    contacts:\n      - {{ email: a@x.example, access: true, notify: true }}\n      - {{ email: b@x.example, access: true, notify: true }}\nnotifications: {{ url: https://hooks.example/portico, login_url: https://c.example/login }}\n"
    ));
    assert_eq!(code, 0, "{err}");
    for email in ["one@x.example", "a@x.example", "b@x.example"] {
        let line = format!("warning: access of {email} expired 2020-01-01");
        assert_eq!(err.matches(&line).count(), 1, "{line:?} in:\n{err}");
    }
    let headers: Vec<&str> = err.lines().filter(|l| l.starts_with("warning:")).collect();
    let mut unique = headers.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), headers.len(), "a warning repeated: {err}");
}

#[test]
fn expiries_out_of_range_are_located_errors() {
    let env = crate::common::Env::sqlite();
    env.write(
        "a.yaml",
        "features: { customer_access: true }
customers:
  - id: C1
    name: Acme
    email: ap@acme.example
    access: { give_access: true, notify: true, expires: 9999-12-31 }
notifications: { url: \"https://mail.example/hook\", login_url: \"https://c.example/login\" }
",
    );
    let (code, _, err) = crate::common::run(env.portico(&["validate", "-f", "manifests"]));
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("a.yaml:6:"), "{err}");
    assert!(err.contains("is out of range"), "{err}");
    assert!(!err.contains("overflow"), "{err}");
}

/// An `oidc_clients:` entry with `body` after its id.
fn client(body: &str) -> String {
    format!(
        "{FEATURES}websites:\n  - {{ id: shop, name: Shop, url: https://shop.example }}\noidc_clients:\n  - id: billing\n    name: Billing\n{body}"
    )
}

#[test]
fn oidc_clients_are_checked_where_they_are_written() {
    let public = "    public: true\n";
    // Redirect URIs: absolute, https except on a loopback host, no fragment, listed once.
    let uris = |list: &str| client(&format!("    redirect_uris: [{list}]\n{public}"));
    fails(&uris("http://billing.example/cb"), "use https://", "9:21");
    fails(
        &uris("https://billing.example/cb#x"),
        "no `#fragment`",
        "9:21",
    );
    fails(&uris("/cb"), "not an absolute URL", "9:21");
    fails(
        &uris("https://b.example/cb, https://b.example/cb"),
        "is listed twice",
        "9:43",
    );
    assert_eq!(
        validate(&uris("http://127.0.0.1:8000/cb, http://localhost/cb")).0,
        0
    );
    fails(
        &client(&format!("    redirect_uris: []\n{public}")),
        "at least one redirect URI",
        "9:20",
    );
    let ok = "    redirect_uris: [https://b.example/cb]\n";
    // One way to authenticate.
    fails(&client(ok), "needs `secret:` or `public: true`", "7:5");
    fails(
        &client(&format!(
            "{ok}    secret: {{ env: HOME }}\n    public: true\n"
        )),
        "a public client has no secret",
        "11:13",
    );
    // A secret long enough (from env or file), or a strong argon2id hash.
    let (code, err) = validate(&client(&format!("{ok}    secret: {{ env: HOME }}\n")));
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("this client secret is shorter than the client-secret minimum (32)"),
        "{err}"
    );
    fails(
        &client(&format!(
            "{ok}    secret: {{ env: PORTICO_NO_SUCH_VARIABLE }}\n"
        )),
        "environment variable `PORTICO_NO_SUCH_VARIABLE` is not set",
        "10:20",
    );
    // Scopes known, `openid` among them; the website defined.
    fails(
        &client(&format!("{ok}{public}    scopes: [openid, emial]\n")),
        "unknown scope `emial`",
        "11:22",
    );
    let (_, err) = validate(&client(&format!(
        "{ok}{public}    scopes: [openid, emial]\n"
    )));
    assert!(err.contains("did you mean `email`?"), "{err}");
    fails(
        &client(&format!("{ok}{public}    scopes: [email]\n")),
        "the scopes must include `openid`",
        "11:13",
    );
    fails(
        &client(&format!("{ok}{public}    website: shpo\n")),
        "website `shpo` is not defined",
        "11:14",
    );
    // The same id twice names both places.
    let twice = format!(
        "{}  - {{ id: billing, name: B2, redirect_uris: [https://b.example/cb], public: true }}\n",
        client(&format!("{ok}{public}"))
    );
    fails(
        &twice,
        "oidc client `billing` is defined twice; first defined at manifests/a.yaml:7:9",
        "11:11",
    );
}

#[test]
fn a_client_secret_is_never_printed_and_is_stored_hashed() {
    let env = Env::new();
    let secret = "a-client-secret-of-forty-characters-0123";
    env.write(
        "a.yaml",
        &client("    redirect_uris: [https://b.example/cb]\n    secret: { env: CLIENT_SECRET }\n"),
    );
    for args in [
        &["plan", "-f", "manifests"][..],
        &["plan", "-f", "manifests", "--format", "json"][..],
        &["apply", "-f", "manifests", "--auto-approve"][..],
    ] {
        let mut cmd = env.portico(args);
        cmd.env("CLIENT_SECRET", secret);
        let (code, out, err) = run(cmd);
        assert_eq!(code, 0, "{out}{err}");
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "{args:?}: {out}{err}"
        );
        if args[0] == "plan" && args.len() == 3 {
            assert!(
                out.contains("secret           = stored hashed (reset 0)"),
                "{out}"
            );
        }
    }
    let stored = env.rows("SELECT secret_hash FROM oidc_clients");
    assert!(stored[0].starts_with("$argon2id$"), "{stored:?}");
    assert!(!env.dump().join("\n").contains(secret));
    // The same secret again plans nothing; `reset: 1` stores it again.
    let mut cmd = env.portico(&["plan", "-f", "manifests", "--detailed-exitcode"]);
    cmd.env("CLIENT_SECRET", secret);
    assert_eq!(run(cmd).0, 0);
    env.write(
        "a.yaml",
        &client("    redirect_uris: [https://b.example/cb]\n    secret: { env: CLIENT_SECRET, reset: 1 }\n"),
    );
    let mut cmd = env.portico(&["plan", "-f", "manifests"]);
    cmd.env("CLIENT_SECRET", secret);
    let (_, out, _) = run(cmd);
    assert!(
        out.contains("secret : stored hashed (reset 0) → stored hashed (reset 1)"),
        "{out}"
    );
}
