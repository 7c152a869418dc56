//! Snapshots of what people read: plan text and located errors.

use crate::common::{ACCOUNT, Env, run};

#[test]
fn plan_text_of_a_first_apply() {
    let env = Env::new();
    env.write("account.yaml", ACCOUNT);
    insta::assert_snapshot!(env.plan(&[]).1);
}

#[test]
fn plan_text_of_changes_with_diff() {
    let env = Env::new();
    env.write("account.yaml", ACCOUNT);
    env.apply();
    let next = ACCOUNT
        .replace("invoice: view", "invoice: none")
        .replace("        access: true\n        notify: true\n", "        access: false\n")
        .replace("  - id: CUST-0043\n    name: Beta GmbH\n    email: info@beta.example\n    access:\n      give_access: true\n      notify: true\n", "");
    env.write("account.yaml", &next);
    insta::assert_snapshot!(env.plan(&["--diff"]).1);
}

#[test]
fn located_errors() {
    let env = Env::new();
    env.write(
        "a.yaml",
        "features:\n  customer_acess: true\nroles:\n  - id: r1\n    name: R1\n    permissions:\n      invoice: full\ncustomers:\n  - id: C1\n    name: One\n    email: one@x.example\n    access:\n      give_access: true\n      role: r2\n      notify: true\n",
    );
    insta::assert_snapshot!(run(env.portico(&["validate", "-f", "manifests"])).2);
}
