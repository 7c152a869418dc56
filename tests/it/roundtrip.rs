//! Properties on real databases: for random desired states A and B, apply A, plan B, apply
//! B → the live state equals B and a new plan of B is empty; and apply A, export, plan the
//! export → no changes.

use std::collections::BTreeMap;

use portico::catalog::{Feature, Level, Permission};
use portico::manifest::model::{Lockout, LoginPolicy, PasswordRules, TwoFactor};
use portico::plan::{Address, DiffOptions, Object, diff, diff_with_fingerprint};
use portico::state::{CustomerRecord, CustomerState, LoginState, RoleState, State, WebsiteState};
use portico::store::{Store, open};
use portico::validate::{Desired, Sections};
use proptest::prelude::*;

const EMAILS: [&str; 8] = [
    "a@x.example",
    "b@x.example",
    "c@x.example",
    "d@x.example",
    "e@x.example",
    "f@x.example",
    "g@x.example",
    "h@x.example",
];

fn level() -> impl Strategy<Value = Level> {
    prop::sample::select(Level::ALL.to_vec())
}

fn role() -> impl Strategy<Value = RoleState> {
    (
        any::<bool>(),
        prop::collection::btree_map(
            prop::sample::select(Permission::ALL.to_vec()),
            level(),
            0..5,
        ),
        any::<bool>(),
    )
        .prop_map(|(renamed, permissions, two_factor)| RoleState {
            name: if renamed {
                "Renamed".into()
            } else {
                "Role".into()
            },
            base: "customer_center".into(),
            two_factor: if two_factor {
                TwoFactor::Required
            } else {
                TwoFactor::Off
            },
            permissions: permissions
                .into_iter()
                .filter(|(_, l)| *l != Level::None)
                .collect(),
        })
}

/// A login drawn from small pools so that states overlap and emails move between logins.
fn login(roles: Vec<String>, websites: Vec<Option<String>>) -> impl Strategy<Value = LoginState> {
    (
        (
            prop::option::of(prop::sample::select(EMAILS.to_vec())),
            prop::option::of(prop::sample::select(vec!["Ann", "Bob"])),
            any::<bool>(),
            prop::sample::select(roles),
            prop::sample::select(websites),
            any::<bool>(),
        ),
        0u32..3,
    )
        .prop_map(
            |((email, name, access, role, website, notify), marker)| LoginState {
                email: email.map(Into::into),
                name: name.map(Into::into),
                access,
                role: role.into(),
                website: website.map(Into::into),
                notify,
                password: Some(marker),
                expires: None,
            },
        )
}

fn state() -> impl Strategy<Value = State> {
    let roles = prop::collection::btree_map(
        prop::sample::select(vec!["r1".to_string(), "r2".into(), "r3".into()]),
        role(),
        0..3,
    );
    let websites = prop::collection::btree_set(
        prop::sample::select(vec!["w1".to_string(), "w2".into()]),
        0..3,
    );
    (roles, websites, any::<[bool; 3]>(), any::<bool>()).prop_flat_map(
        |(roles, websites, features, policy)| {
            let mut role_ids: Vec<String> = roles.keys().cloned().collect();
            role_ids.push("customer_center".into());
            let mut site_ids: Vec<Option<String>> = websites.iter().cloned().map(Some).collect();
            site_ids.push(None);
            // Protection is covered by the CLI tests; here every object may be pruned.
            let customer = (
                prop::sample::select(vec!["Acme", "Beta"]),
                Just(false),
                login(role_ids.clone(), site_ids.clone()),
                prop::collection::vec(login(role_ids, site_ids), 0..4),
            );
            let ids = prop::sample::select(vec![
                "C1".to_string(),
                "C2".into(),
                "C3".into(),
                "C4".into(),
            ]);
            let customers = prop::collection::btree_map(ids, customer, 0..4);
            (
                Just(roles),
                Just(websites),
                Just(features),
                Just(policy),
                customers,
            )
                .prop_map(build)
        },
    )
}

type RawCustomer = (&'static str, bool, LoginState, Vec<LoginState>);

type Drawn = (
    BTreeMap<String, RoleState>,
    std::collections::BTreeSet<String>,
    [bool; 3],
    bool,
    BTreeMap<String, RawCustomer>,
);

/// Assembles a valid state: emails unique across all logins (first one wins).
fn build((roles, websites, features, policy, customers): Drawn) -> State {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = BTreeMap::new();
    for (id, (name, protect, mut own, contacts)) in customers {
        if own.email.as_ref().is_some_and(|e| !seen.insert(e.clone())) {
            own.email = None;
        }
        // Time-bound access on some customers; contacts inherit it (what manifests say).
        own.expires = protect.then(|| "2031-06-30T23:59:59Z".into());
        let contacts: Vec<LoginState> = contacts
            .into_iter()
            .map(|c| LoginState {
                expires: own.expires.clone(),
                ..c
            })
            .collect();
        let contacts = contacts
            .into_iter()
            .filter_map(|mut c| {
                let email = c.email.take()?;
                seen.insert(email.clone()).then(|| {
                    (
                        email.clone(),
                        LoginState {
                            email: Some(email),
                            ..c
                        },
                    )
                })
            })
            .collect();
        out.insert(
            id.into(),
            CustomerState {
                record: CustomerRecord {
                    name: name.into(),
                    protect,
                    login: own,
                },
                contacts,
            },
        );
    }
    State {
        // Email with a custom template, or a webhook with the built-in one.
        notifications: Some(portico::state::NotificationSettings {
            url: (!policy).then(|| "https://mail.example/hook".into()),
            auth_env: None,
            smtp: policy.then(|| portico::state::SmtpSettings {
                url: "smtps://mail.example:465".into(),
                username: Some("portico".into()),
                password_env: Some("SMTP_PASSWORD".into()),
            }),
            from: policy.then(|| "Acme <no-reply@acme.example>".into()),
            reply_to: policy.then(|| "admin@acme.example".into()),
            login_url: None,
            token_ttl_hours: 24,
            max_attempts: if policy { 5 } else { 10 },
            template: policy.then(|| portico::state::TemplateSources {
                subject: "Access for {{ customer }}".into(),
                text: "Hello {{ name }},\n{{ set_password_url }}\n".into(),
                html: None,
            }),
            reset_ttl_minutes: if policy { 30 } else { 60 },
            reset_template: policy.then(|| portico::state::TemplateSources {
                subject: "Reset for {{ customer }}".into(),
                text: "{{ set_password_url }}\n".into(),
                html: Some("<a href=\"{{ set_password_url }}\">reset</a>".into()),
            }),
        }),
        features: [
            Feature::CustomerAccess,
            Feature::Websites,
            Feature::TwoFactorAuthentication,
        ]
        .into_iter()
        .zip(features)
        .chain(Feature::ALL.iter().skip(3).map(|f| (*f, false)))
        .collect(),
        websites: websites
            .into_iter()
            .map(|id| {
                (
                    id.clone(),
                    WebsiteState {
                        name: id.to_uppercase(),
                        url: format!("https://{id}.example"),
                    },
                )
            })
            .collect(),
        login_policy: Some(LoginPolicy {
            lockout: Lockout::default(),
            session_timeout_minutes: if policy { 30 } else { 60 },
            session_max_hours: if policy { 8 } else { 12 },
            password: PasswordRules { min_length: 12 },
        }),
        roles,
        customers: out.into_iter().collect(),
        // A guardrail that every generated state keeps (customer_center grants edit).
        policies: [(
            "pay-limit".to_string(),
            portico::policy::PolicyState {
                message: "no one above edit".into(),
                rule: portico::policy::Rule::MaxLevel(portico::policy::MaxLevel {
                    permission: portico::catalog::Permission::CustomerPayment,
                    level: portico::catalog::Level::Full,
                    except_roles: if policy { vec!["r1".into()] } else { vec![] },
                }),
            },
        )]
        .into(),
        // OpenID Connect clients: one kept across states with changing fields, one that
        // comes and goes, confidential or public.
        oidc_clients: oidc_clients(policy),
        password_holders: Default::default(),
        access: Default::default(),
        client_secret_hashes: Default::default(),
    }
}

fn oidc_clients(
    policy: bool,
) -> std::collections::BTreeMap<String, portico::state::OidcClientState> {
    let client = |uri: &str, secret: Option<u32>| portico::state::OidcClientState {
        name: format!("Portal {uri}"),
        redirect_uris: vec![
            format!("https://{uri}/cb"),
            "http://127.0.0.1:8000/cb".into(),
        ],
        post_logout_redirect_uris: if secret.is_some() {
            vec![format!("https://{uri}/")]
        } else {
            vec![]
        },
        website: None,
        scopes: vec!["email".into(), "openid".into()],
        secret,
    };
    let mut clients = std::collections::BTreeMap::new();
    clients.insert(
        "portal".to_string(),
        client(
            if policy { "a.example" } else { "b.example" },
            policy.then_some(1),
        ),
    );
    if policy {
        clients.insert("app".to_string(), client("app.example", None));
    }
    clients
}

fn desired(state: &State) -> Desired {
    let all = Sections {
        notifications: true,
        features: true,
        websites: true,
        login_policy: true,
        roles: true,
        customers: true,
        policies: true,
        oidc_clients: true,
    };
    Desired {
        passwords: Default::default(),
        state: state.clone(),
        managed: all,
        needs_live_access: false,
    }
}

/// A plan as `apply` hands it to the store, its history row on the way.
fn to_apply(
    plan: portico::plan::Plan,
) -> (std::sync::Arc<portico::plan::Plan>, portico::store::History) {
    let plan = std::sync::Arc::new(plan);
    let history = portico::store::History::start(&plan, Default::default());
    (plan, history)
}

/// The live state after applying `target`.
async fn apply(url: &str, target: &State) -> State {
    let mut store = open(url, true).await.unwrap();
    let (live, applied) = store.read_with_applied().await.unwrap();
    let plan = diff_with_fingerprint(
        &desired(target),
        &live,
        DiffOptions::default(),
        applied.version.fingerprint(),
    );
    // Each confidential client's secret, as apply stores it (the logins keep none here).
    let secrets: Vec<_> = plan
        .changes
        .iter()
        .filter_map(|c| match (&c.address, &c.after) {
            (Address::OidcClient(id), Some(Object::OidcClient(client)))
                if client.secret.is_some() =>
            {
                Some(portico::passwords::PasswordRow {
                    customer_id: "".into(),
                    contact: "".into(),
                    client: id.into(),
                    hash: client_secret_hash().into(),
                })
            }
            _ => None,
        })
        .collect();
    let (plan, history) = to_apply(plan);
    store
        .apply(&plan, history, (secrets, None), 0)
        .await
        .unwrap();
    let mut live = store.read().await.unwrap();
    let stored = std::mem::take(&mut live.client_secret_hashes);
    for (id, client) in &live.oidc_clients {
        assert_eq!(
            stored.contains_key(id),
            client.secret.is_some(),
            "{id}: a secret is stored exactly for a confidential client"
        );
    }
    live
}

/// One argon2id hash for every client secret of these tests (hashing is slow).
fn client_secret_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        portico::passwords::hash("a client secret of thirty-two characters").unwrap()
    })
}

fn converges(env: fn() -> crate::common::Env, a: &State, b: &State) -> Result<(), TestCaseError> {
    let env = env();
    crate::common::block_on(async {
        let after_a = apply(&env.url, a).await;
        prop_assert!(diff(&desired(a), &after_a, DiffOptions::default()).is_empty());
        let after_b = apply(&env.url, b).await;
        prop_assert_eq!(&after_b, b);
        prop_assert!(diff(&desired(b), &after_b, DiffOptions::default()).is_empty());
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn apply_a_then_b_converges_to_b_on_sqlite(a in state(), b in state()) {
        converges(crate::common::Env::sqlite, &a, &b)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn apply_a_then_b_converges_to_b_on_postgres(a in state(), b in state()) {
        converges(crate::common::Env::postgres, &a, &b)?;
    }
}

/// `state` narrowed to what manifests can say and validation accepts: levels within their
/// maximum, logins with access have an email, a customer's own login has no separate name, features on where logins and roles need them,
/// and a contact without a website only under a customer without one (a contact inherits its
/// customer's website).
fn expressible(mut s: State) -> State {
    for role in s.roles.values_mut() {
        for (permission, level) in role.permissions.iter_mut() {
            *level = (*level).min(permission.info().max);
        }
    }
    let (mut access, mut website) = (false, false);
    for (_, customer) in s.customers.iter_mut() {
        let own = &mut customer.record.login;
        own.access &= own.email.is_some();
        own.name = None; // a customer's own login has the customer's name, not one of its own
        let inherited = own.website.clone();
        access |= own.access;
        website |= own.website.is_some();
        for (_, contact) in customer.contacts.iter_mut() {
            if contact.website.is_none() {
                contact.website = inherited.clone();
            }
            access |= contact.access;
            website |= contact.website.is_some();
        }
    }
    let two_factor = s
        .roles
        .values()
        .any(|r| r.two_factor == TwoFactor::Required);
    let on = |f: Feature, needed: bool, s: &mut State| {
        if needed {
            s.features.insert(f, true);
        }
    };
    on(Feature::TwoFactorAuthentication, two_factor, &mut s);
    on(Feature::Websites, website, &mut s);
    let needs_access = access || s.feature(Feature::Websites);
    on(Feature::CustomerAccess, needs_access, &mut s);
    s
}

fn export_round_trips(env: fn() -> crate::common::Env, a: &State) -> Result<(), TestCaseError> {
    let env = env();
    crate::common::block_on(async {
        let mut live = apply(&env.url, a).await;
        // What export reads besides the state: the stored secrets' hashes.
        live.client_secret_hashes = live
            .oidc_clients
            .iter()
            .filter(|(_, c)| c.secret.is_some())
            .map(|(id, _)| (id.clone(), client_secret_hash().to_string()))
            .collect();
        let options = portico::export::ExportOptions {
            per_file: 2,
            ..Default::default()
        };
        let export = portico::export::export(&live, options);
        prop_assert!(export.warnings.is_empty(), "{:?}", export.warnings);
        let dir = env.path("exported");
        for file in &export.files {
            let path = dir.join(&file.path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, &file.text).unwrap();
        }
        let (set, mut diagnostics) = portico::manifest::load(&dir, Default::default());
        let (desired, found) = portico::validate::validate(&set, Some(&live));
        diagnostics.extend(found);
        let errors: Vec<_> = diagnostics.iter().filter(|d| d.is_error()).collect();
        prop_assert!(errors.is_empty(), "{errors:?}");
        let plan = diff(&desired, &live, DiffOptions::default());
        prop_assert!(plan.is_empty(), "{:?}", plan.changes);
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn export_then_plan_is_empty_on_sqlite(a in state()) {
        export_round_trips(crate::common::Env::sqlite, &expressible(a))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn export_then_plan_is_empty_on_postgres(a in state()) {
        export_round_trips(crate::common::Env::postgres, &expressible(a))?;
    }
}

/// An account of one customer with access.
fn one_customer() -> State {
    let mut features = State::empty().features;
    features.insert(Feature::CustomerAccess, true);
    State {
        features,
        customers: [(
            "C1".into(),
            CustomerState {
                record: CustomerRecord {
                    name: "One".into(),
                    protect: false,
                    login: LoginState {
                        email: Some("a@x.example".into()),
                        name: None,
                        access: true,
                        role: "customer_center".into(),
                        website: None,
                        notify: false,
                        password: None,
                        expires: None,
                    },
                },
                contacts: Default::default(),
            },
        )]
        .into_iter()
        .collect(),
        ..State::empty()
    }
}

/// The plan to `target` from what `store` reads now, marked with that read.
async fn plan_from_read(
    store: &mut portico::store::AnyStore,
    target: &State,
) -> portico::plan::Plan {
    let (live, applied) = store.read_with_applied().await.unwrap();
    let mut plan = diff_with_fingerprint(
        &desired(target),
        &live,
        DiffOptions::default(),
        applied.version.fingerprint(),
    );
    plan.read_mark = store.read_mark();
    plan
}

/// Apply skips re-reading the state only for a plan computed from this connection's last
/// read with no commit since: a write by another connection in between makes the plan
/// stale, and a plan without a mark (saved, or built elsewhere) is always checked in full.
#[test]
fn an_in_process_plan_is_refused_after_an_outside_write() {
    use sqlx::Connection as _;
    let env = crate::common::Env::sqlite();
    crate::common::block_on(async {
        let base = one_customer();
        apply(&env.url, &base).await;
        let mut target = base.clone();
        target.customers.get_mut("C1").unwrap().record.name = "Renamed".into();

        let mut store = open(&env.url, true).await.unwrap();
        let plan = plan_from_read(&mut store, &target).await;
        assert!(plan.read_mark.is_some(), "SQLite marks its reads");

        // Someone edits the database between plan and apply.
        let mut other = sqlx::SqliteConnection::connect(&env.url).await.unwrap();
        sqlx::query("UPDATE logins SET access = 0")
            .execute(&mut other)
            .await
            .unwrap();
        other.close().await.unwrap();
        let (applying, history) = to_apply(plan.clone());
        let refused = store.apply(&applying, history, (Vec::new(), None), 0).await;
        assert!(
            matches!(refused, Err(portico::store::StoreError::Stale)),
            "an outside write makes the plan stale: {refused:?}"
        );

        // Read again: the same change now applies, and the outside edit is overwritten.
        let plan = plan_from_read(&mut store, &target).await;
        // Planned from a read before this connection's own apply below, it is checked in full.
        let again = plan_from_read(&mut store, &base).await;
        let (applying, history) = to_apply(plan.clone());
        store
            .apply(&applying, history, (Vec::new(), None), 0)
            .await
            .unwrap();
        assert_eq!(store.read().await.unwrap(), target);

        // A plan whose mark is from before this connection's own apply is checked in full.
        let (applying, history) = to_apply(again);
        let refused = store.apply(&applying, history, (Vec::new(), None), 0).await;
        assert!(
            matches!(refused, Err(portico::store::StoreError::Stale)),
            "the store's own write since the read makes the plan stale: {refused:?}"
        );
    });
}

/// A plan big enough to build its history row and batches on a thread (2,000 changes and
/// more) is refused when an outside write made it stale, on both engines, without a write;
/// planned again, it applies.
#[test]
fn a_big_plan_made_stale_is_refused_on_both_engines() {
    use sqlx::Connection as _;
    for env in [crate::common::Env::sqlite(), crate::common::Env::postgres()] {
        let base = one_customer();
        let mut target = base.clone();
        for i in 0..2_100 {
            let mut customer = base.customers[&"C1".into()].clone();
            customer.record.name = format!("Customer {i}").into();
            customer.record.login.email = Some(format!("c{i}@x.example").into());
            target.customers.insert(format!("N{i:05}").into(), customer);
        }
        crate::common::block_on(async {
            apply(&env.url, &base).await;
            let mut store = open(&env.url, true).await.unwrap();
            let plan = plan_from_read(&mut store, &target).await;
            assert!(
                plan.changes.len() >= 2_000,
                "{} changes",
                plan.changes.len()
            );

            let outside = "UPDATE logins SET access = FALSE";
            if env.is_sqlite() {
                let mut other = sqlx::SqliteConnection::connect(&env.url).await.unwrap();
                sqlx::query(outside).execute(&mut other).await.unwrap();
            } else {
                let mut other = sqlx::PgConnection::connect(&env.url).await.unwrap();
                sqlx::query(outside).execute(&mut other).await.unwrap();
            }
            let (applying, history) = to_apply(plan);
            let refused = store.apply(&applying, history, (Vec::new(), None), 0).await;
            assert!(
                matches!(refused, Err(portico::store::StoreError::Stale)),
                "an outside write makes the big plan stale: {refused:?}"
            );
            let mut after_outside = base.clone();
            after_outside
                .customers
                .get_mut("C1")
                .unwrap()
                .record
                .login
                .access = false;
            assert_eq!(
                store.read().await.unwrap(),
                after_outside,
                "nothing applied"
            );
            drop(store);

            assert_eq!(apply(&env.url, &target).await, target);
        });
    }
}
