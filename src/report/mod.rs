//! The access review: every login × permission with its effective level, role, website,
//! two-factor, lockout, last login and expiry, as one self-contained HTML file (no network:
//! styles, script and data inline) an auditor opens in a browser, or as CSV.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::catalog::{Level, Permission};
use crate::state::State;
use crate::store::{Activity, LoginActivity};

/// The HTML page (minijinja); the data rides in a JSON script element.
const PAGE: &str = include_str!("report.html");

/// Days ahead that count as "expiring soon".
pub const EXPIRING_DAYS: i64 = 14;

/// One login, flattened for the matrix.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub email: String,
    pub name: String,
    pub customer_id: String,
    pub customer: String,
    pub kind: &'static str,
    pub access: bool,
    pub role: String,
    pub website: String,
    pub two_factor: bool,
    pub locked: bool,
    /// The sign-in decision (DESIGN §10.1) at the report's time: may this login get in?
    pub can_log_in: bool,
    /// A password is set (the invitation was accepted, or one was assigned); unknown when
    /// reporting the manifests.
    pub password_set: Option<bool>,
    /// The apply that last wrote this login (`apply 12`, with its commit when known).
    pub changed_by: String,
    pub last_login: String,
    pub expires: String,
    /// One level per [`Permission::ALL`].
    pub levels: Vec<Level>,
}

impl Row {
    /// Whether this login can pay invoices online (`customer_payment` at create or more, with
    /// the Online Customer Payments feature on).
    pub fn can_pay(&self) -> bool {
        self.access
            && Permission::ALL
                .iter()
                .position(|p| *p == Permission::CustomerPayment)
                .is_some_and(|i| self.levels[i] >= Level::Create)
    }
}

/// The figures at the top of the report.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Summary {
    pub logins: usize,
    pub with_access: usize,
    /// With access, and the sign-in decision lets them in now.
    pub can_sign_in: usize,
    /// With access but no password yet: invited, never accepted (live state only).
    pub invited: usize,
    pub by_role: BTreeMap<String, usize>,
    pub with_two_factor: usize,
    pub locked: usize,
    pub never_logged_in: usize,
    pub expiring_soon: usize,
    pub can_pay: usize,
}

/// Every login of `state`, with runtime activity when the database has it.
pub fn rows(state: &State, activity: &Activity, now: jiff::Timestamp) -> Vec<Row> {
    let now_text = crate::clock::format(now);
    let written_by = &activity.written_by;
    let activity: HashMap<(&str, &str), &LoginActivity> = activity
        .logins
        .iter()
        .map(|a| ((a.customer_id.as_str(), a.contact.as_str()), a))
        .collect();
    let standard: HashMap<&str, &str> = crate::catalog::standard_roles()
        .into_iter()
        .map(|r| (r.id, r.name))
        .collect();
    let mut out = Vec::with_capacity(state.login_count());
    for (id, customer) in &state.customers {
        let logins = std::iter::once(("", &customer.record.login))
            .chain(customer.contacts.iter().map(|(e, l)| (e.as_str(), l)));
        for (contact, login) in logins {
            let Some(email) = login.email.as_deref().map(str::to_string) else {
                continue;
            };
            let seen = activity.get(&(id.as_str(), contact));
            let address = crate::state::Address::login(id, contact);
            let changed_by = written_by
                .get(&address.to_string())
                .map(changed_by)
                .unwrap_or_default();
            let decision = decide(state, login, seen.copied(), &now_text);
            out.push(Row {
                email,
                name: login.name.as_deref().unwrap_or_default().to_string(),
                customer_id: id.to_string(),
                customer: customer.record.name.to_string(),
                kind: if contact.is_empty() {
                    "customer"
                } else {
                    "contact"
                },
                access: login.access,
                role: role_name(state, &standard, &login.role),
                website: login
                    .website
                    .as_ref()
                    .map(|w| website_name(state, w))
                    .unwrap_or_default(),
                two_factor: decision.second_factor,
                locked: decision.locked(),
                can_log_in: decision.may_enter(),
                password_set: seen.map(|a| a.password_set),
                changed_by,
                last_login: seen
                    .and_then(|a| a.last_login_at.clone())
                    .unwrap_or_default(),
                expires: login
                    .expires
                    .as_deref()
                    .map(crate::clock::display)
                    .unwrap_or_default(),
                levels: Permission::ALL
                    .iter()
                    .map(|p| crate::policy::effective_level(state, &login.role, *p))
                    .collect(),
            });
        }
    }
    out
}

/// The one sign-in decision (DESIGN §10.1) for a login, on any website, with what the
/// database knows of it.
fn decide(
    state: &State,
    login: &crate::state::LoginState,
    seen: Option<&LoginActivity>,
    now_text: &str,
) -> crate::signin::Decision {
    let facts = seen.map(|a| crate::signin::Runtime {
        password_set: a.password_set,
        locked_until: a.locked_until.clone(),
        failed_attempts: a.failed_attempts,
        // Whether a second factor is asked for changes no reason why not.
        second_factor: false,
    });
    crate::signin::decide(
        state,
        login,
        facts.as_ref(),
        crate::signin::Site::Anywhere,
        now_text,
    )
}

/// The apply that last wrote a login, with its commit.
fn changed_by(w: &crate::store::WrittenBy) -> String {
    match &w.git_commit {
        Some(commit) => format!(
            "apply {} ({})",
            w.apply_id,
            commit.chars().take(12).collect::<String>()
        ),
        None => format!("apply {}", w.apply_id),
    }
}

/// A role's name: a custom role's, a standard role's, else its id.
fn role_name(state: &State, standard: &HashMap<&str, &str>, role: &str) -> String {
    state
        .roles
        .get(role)
        .map(|r| r.name.clone())
        .or_else(|| standard.get(role).map(|n| n.to_string()))
        .unwrap_or_else(|| role.to_string())
}

/// A website's name, else its id.
fn website_name(state: &State, website: &str) -> String {
    state
        .websites
        .get(website)
        .map_or(website.to_string(), |s| s.name.clone())
}

/// The summary of `rows` (counts among logins with access).
pub fn summary(rows: &[Row], now: jiff::Timestamp) -> Summary {
    let mut s = Summary {
        logins: rows.len(),
        ..Summary::default()
    };
    for row in rows.iter().filter(|r| r.access) {
        s.with_access += 1;
        s.can_sign_in += usize::from(row.can_log_in);
        s.invited += usize::from(row.password_set == Some(false));
        *s.by_role.entry(row.role.clone()).or_default() += 1;
        s.with_two_factor += usize::from(row.two_factor);
        s.locked += usize::from(row.locked);
        s.never_logged_in += usize::from(row.last_login.is_empty());
        s.can_pay += usize::from(row.can_pay());
        let soon = crate::clock::parse(&row.expires)
            .is_ok_and(|at| (0..EXPIRING_DAYS).contains(&crate::clock::days_until(now, at)));
        s.expiring_soon += usize::from(soon);
    }
    s
}

/// The self-contained HTML page.
///
/// # Errors
/// Only a template bug (the template is built in and tested).
pub fn html(rows: &[Row], now: jiff::Timestamp, source: &str) -> Result<String, String> {
    let levels: Vec<&str> = [
        Level::None,
        Level::View,
        Level::Create,
        Level::Edit,
        Level::Full,
    ]
    .iter()
    .map(|l| l.key())
    .collect();
    let json = rows_json(rows);
    let (roles, websites) = roles_and_websites(rows);
    let permissions: Vec<(&str, &str)> = Permission::ALL
        .iter()
        .map(|p| (p.key(), p.info().label))
        .collect();
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_template("report.html", PAGE)
        .map_err(|e| e.to_string())?;
    let template = env.get_template("report.html").map_err(|e| e.to_string())?;
    let summary = summary(rows, now);
    let by_role: Vec<(String, usize)> = summary.by_role.clone().into_iter().collect();
    template
        .render(minijinja::context! {
            generated => crate::clock::format(now),
            source => source.to_string(),
            runtime => rows.iter().any(|r| r.password_set.is_some()),
            summary => minijinja::Value::from(minijinja::value::Serde(&summary)),
            by_role => minijinja::Value::from(minijinja::value::Serde(&by_role)),
            roles => roles,
            websites => websites,
            permissions => minijinja::Value::from(minijinja::value::Serde(&permissions)),
            levels => minijinja::Value::from_safe_string(serde_json::to_string(&levels).expect("strings serialise")),
            expiring_days => EXPIRING_DAYS,
            data => minijinja::Value::from_safe_string(json),
        })
        .map_err(|e| e.to_string())
}

/// The rows as the page's JSON data: compact rows (arrays, levels as one digit each) keep
/// 300,000 logins in tens of MB.
fn rows_json(rows: &[Row]) -> String {
    let data: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let digits: String = r
                .levels
                .iter()
                .map(|l| char::from(b'0' + *l as u8))
                .collect();
            serde_json::json!([
                r.email,
                r.name,
                r.customer_id,
                r.customer,
                r.kind,
                u8::from(r.access),
                r.role,
                r.website,
                u8::from(r.two_factor),
                u8::from(r.locked),
                r.last_login,
                r.expires,
                digits,
                u8::from(r.can_pay()),
                r.password_set.map_or(-1, i8::from),
                r.changed_by,
                u8::from(r.can_log_in)
            ])
        })
        .collect();
    // No `<` at all inside the data element (JSON allows `\u003c`), so no value can end it
    // or open markup.
    serde_json::to_string(&data)
        .expect("rows serialise")
        .replace('<', "\\u003c")
}

/// The roles and websites the rows name, sorted, each once (the page's filters).
fn roles_and_websites(rows: &[Row]) -> (Vec<String>, Vec<String>) {
    let mut roles: Vec<String> = rows.iter().map(|r| r.role.clone()).collect();
    roles.sort_unstable();
    roles.dedup();
    let mut websites: Vec<String> = rows
        .iter()
        .map(|r| r.website.clone())
        .filter(|w| !w.is_empty())
        .collect();
    websites.sort_unstable();
    websites.dedup();
    (roles, websites)
}

/// A cell a spreadsheet shows as text, never runs as a formula (OWASP "CSV injection"): a
/// cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return gets a leading `'`.
pub fn spreadsheet_safe(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

/// The same matrix as CSV (one column per permission), every cell [`spreadsheet_safe`].
///
/// # Errors
/// Writing failed.
pub fn csv(rows: &[Row], out: impl std::io::Write) -> Result<(), csv::Error> {
    let mut w = csv::Writer::from_writer(out);
    let mut header = vec![
        "email",
        "name",
        "customer_id",
        "customer",
        "kind",
        "access",
        "role",
        "website",
        "two_factor",
        "locked",
        "last_login",
        "expires",
        "can_pay",
    ];
    header.extend(Permission::ALL.iter().map(|p| p.key()));
    header.extend(["can_log_in", "password_set", "changed_by"]);
    w.write_record(&header)?;
    for r in rows {
        let yes = |b: bool| if b { "yes" } else { "no" };
        let mut record = vec![
            r.email.clone(),
            r.name.clone(),
            r.customer_id.clone(),
            r.customer.clone(),
            r.kind.to_string(),
            yes(r.access).into(),
            r.role.clone(),
            r.website.clone(),
            yes(r.two_factor).into(),
            yes(r.locked).into(),
            r.last_login.clone(),
            r.expires.clone(),
            yes(r.can_pay()).into(),
        ];
        record.extend(r.levels.iter().map(|l| l.key().to_string()));
        record.push(yes(r.can_log_in).into());
        record.push(r.password_set.map_or("unknown", yes).into());
        record.push(r.changed_by.clone());
        w.write_record(
            record
                .iter()
                .map(|cell| spreadsheet_safe(cell).into_owned()),
        )?;
    }
    w.flush()?;
    Ok(())
}

#[cfg(test)]
mod csv_tests {
    use super::spreadsheet_safe;

    #[test]
    fn formula_cells_are_neutralised() {
        for formula in [
            "=HYPERLINK(\"http://x\")",
            "@SUM(A1)",
            "-2+3+cmd|' /C calc'!A0",
            "+1",
            "\t=1",
            "\r=1",
        ] {
            assert_eq!(spreadsheet_safe(formula), format!("'{formula}"));
        }
        for plain in ["Acme Ltd", "jane@acme.example", "2026-01-01", "", "a=b"] {
            assert_eq!(spreadsheet_safe(plain), plain);
        }
    }
}

#[cfg(test)]
mod summary_tests {
    use super::*;

    fn row(email: &str, access: bool, can_log_in: bool, password_set: Option<bool>) -> Row {
        Row {
            email: email.into(),
            name: String::new(),
            customer_id: "C1".into(),
            customer: "One".into(),
            kind: "contact",
            access,
            role: "Customer Center".into(),
            website: String::new(),
            two_factor: false,
            locked: false,
            can_log_in,
            password_set,
            changed_by: String::new(),
            last_login: String::new(),
            expires: String::new(),
            levels: vec![Level::None; Permission::ALL.len()],
        }
    }

    #[test]
    fn invitations_not_accepted_are_not_people_who_can_sign_in() {
        let rows = [
            row("a@x.example", true, true, Some(true)),
            row("b@x.example", true, false, Some(false)),
            row("c@x.example", true, false, Some(true)),
            row("d@x.example", false, false, Some(false)),
            // From the manifests: no runtime data, so nobody counts as invited.
            row("e@x.example", true, true, None),
        ];
        let s = summary(&rows, jiff::Timestamp::UNIX_EPOCH);
        assert_eq!(
            (s.logins, s.with_access, s.can_sign_in, s.invited),
            (5, 4, 2, 1)
        );
    }
}
