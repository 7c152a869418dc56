//! The incremental plan (issue #26) is exact: random sequences of edits (customers,
//! contacts, roles, policies, templates, OpenID Connect clients and their secrets, whole
//! files added, moved and removed, password sources (a variable and a file), how files are
//! read (`--max-file-size`, `--policy-warn-only`), the clock, raw SQL edits outside
//! portico, the login service's runtime writes, applies in every form) and after every step
//! the plan computed from the changed files only equals the full plan: the same exit code,
//! text, JSON (digests included) and messages.
//! `PORTICO_INCREMENTAL_CASES` sets the number of sequences per engine (default 8);
//! `PORTICO_INCREMENTAL_SEED` the seed they are drawn from (default a fixed one, so the
//! suite proves the same thing on every run; `random` draws a new seed and prints it).

use std::collections::BTreeMap;

use proptest::prelude::*;

use crate::common::{Env, run};

const IDS: usize = 9;
const EMAILS: usize = 14;
const FILES: [&str; 4] = ["a", "b", "c", "d"];
/// The clock every step runs on, moved on by `Op::Time`.
const START_DAY: i64 = 20_000;

#[derive(Clone, Debug)]
struct Contact {
    email: usize,
    access: bool,
    role: Option<usize>,
}

#[derive(Clone, Debug)]
struct Customer {
    id: usize,
    name: u8,
    email: Option<usize>,
    access: bool,
    role: Option<usize>,
    website: bool,
    notify: bool,
    protect: bool,
    /// Days after the start the access ends.
    expires: Option<i64>,
    password: bool,
    /// A `password: { file: }` source (customer 1 only).
    password_file: bool,
    contacts: Vec<Contact>,
}

/// The manifests as a model: the account file's knobs and the customer files.
#[derive(Clone, Debug, Default)]
struct Model {
    files: BTreeMap<String, Vec<Customer>>,
    invoice_level: u8,
    policy: bool,
    template: u8,
    /// A role only some customers use (when declared, unused ones are warned about).
    spare_role: bool,
    /// The password file and the client secret's file: 0 long enough, 1 too short, 2
    /// missing.
    password_file: u8,
    /// An OpenID Connect client: 0 none, 1 public, 2 with a secret from a variable, 3 from
    /// a file; its redirect address moves with `invoice_level`.
    client: u8,
}

#[derive(Clone, Debug)]
enum Op {
    Edit {
        file: usize,
        at: usize,
        field: u8,
        value: usize,
    },
    Add {
        file: usize,
        id: usize,
        email: usize,
    },
    Remove {
        file: usize,
        at: usize,
    },
    Move {
        file: usize,
        at: usize,
        to: usize,
    },
    AddFile {
        name: usize,
    },
    RemoveFile {
        file: usize,
    },
    RenameFile {
        file: usize,
        name: usize,
    },
    /// A file's customers in the reverse order.
    Reorder {
        file: usize,
    },
    Account {
        kind: u8,
    },
    Sql {
        kind: u8,
    },
    Apply {
        kind: u8,
    },
    Time {
        days: i64,
    },
    Secret {
        kind: u8,
    },
    Reading {
        kind: u8,
    },
    /// In a sequence whose files are in a git work tree: 0 `git add -A` at once (entries
    /// as new as the index: racily clean), 1 the same a moment later, 2 then a commit.
    Git {
        kind: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..4usize, 0..6usize, 0..10u8, 0..20usize)
            .prop_map(|(file, at, field, value)| Op::Edit { file, at, field, value }),
        3 => (0..4usize, 0..IDS, 0..EMAILS).prop_map(|(file, id, email)| Op::Add { file, id, email }),
        2 => (0..4usize, 0..6usize).prop_map(|(file, at)| Op::Remove { file, at }),
        2 => (0..4usize, 0..6usize, 0..4usize).prop_map(|(file, at, to)| Op::Move { file, at, to }),
        1 => (0..4usize).prop_map(|name| Op::AddFile { name }),
        1 => (0..4usize).prop_map(|file| Op::RemoveFile { file }),
        1 => (0..4usize, 0..4usize).prop_map(|(file, name)| Op::RenameFile { file, name }),
        1 => (0..4usize).prop_map(|file| Op::Reorder { file }),
        3 => (0..5u8).prop_map(|kind| Op::Account { kind }),
        2 => (0..5u8).prop_map(|kind| Op::Sql { kind }),
        5 => (0..4u8).prop_map(|kind| Op::Apply { kind }),
        1 => (1..20i64).prop_map(|days| Op::Time { days }),
        2 => (0..9u8).prop_map(|kind| Op::Secret { kind }),
        1 => (0..4u8).prop_map(|kind| Op::Reading { kind }),
        3 => (0..3u8).prop_map(|kind| Op::Git { kind }),
    ]
}

fn email(n: usize) -> String {
    format!("user{n}@example.com")
}

fn date(day: i64) -> String {
    let at = jiff::Timestamp::from_second(day * 86_400).unwrap();
    at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl Model {
    fn start() -> Model {
        let mut model = Model::default();
        for (i, file) in ["a", "b"].iter().enumerate() {
            let customers = (0..2)
                .map(|k| Customer {
                    id: i * 2 + k,
                    name: 0,
                    email: Some(i * 4 + k * 2),
                    access: true,
                    role: Some(k),
                    website: k == 1,
                    notify: true,
                    protect: false,
                    expires: None,
                    // Customers 0 and 1 start with assigned passwords (a variable, a file).
                    password: i * 2 + k == 0,
                    password_file: i * 2 + k == 1,
                    contacts: vec![Contact {
                        email: i * 4 + k * 2 + 1,
                        access: true,
                        role: (i == 1 && k == 1).then_some(2),
                    }],
                })
                .collect();
            model.files.insert(file.to_string(), customers);
        }
        model.spare_role = true;
        model
    }

    fn file_at(&self, n: usize) -> Option<String> {
        let names: Vec<&String> = self.files.keys().collect();
        (!names.is_empty()).then(|| names[n % names.len()].clone())
    }

    fn account(&self) -> String {
        let level = ["view", "edit", "none"][usize::from(self.invoice_level % 3)];
        let mut text = format!(
            "features:\n  customer_access: true\n  websites: true\n\
             notifications:\n  url: http://127.0.0.1:9/hook\n  login_url: https://c.example.com/login\n\
             \x20 template: {{ subject: subject.txt, text: body.txt }}\n\
             websites:\n  - {{ id: web, name: Web, url: https://web.example.com }}\n\
             roles:\n  - {{ id: role0, name: Role 0, base: customer_center, permissions: {{ invoice: {level} }} }}\n\
             \x20 - {{ id: role1, name: Role 1, base: customer_center }}\n"
        );
        if self.spare_role {
            text.push_str("  - { id: role2, name: Role 2, base: customer_center }\n");
        }
        if self.policy {
            text.push_str(
                "policies:\n  - { id: few, message: at most two logins, max_logins_per_customer: 2 }\n",
            );
        }
        let secret = match self.client {
            1 => "public: true",
            2 => "secret: { env: PORTICO_TEST_CLIENT_SECRET }",
            _ => "secret: { file: client-secret.txt }",
        };
        if self.client > 0 {
            text.push_str(&format!(
                "oidc_clients:\n  - {{ id: app, name: App, redirect_uris: [https://app.example.com/cb{}], \
                 website: web, {secret} }}\n",
                self.invoice_level % 2
            ));
        }
        text
    }

    fn customers(customers: &[Customer]) -> String {
        let mut text = String::from("customers:\n");
        if customers.is_empty() {
            return "customers: []\n".into();
        }
        for c in customers {
            text.push_str(&format!(
                "  - id: C{}\n    name: Customer {} v{}\n",
                c.id, c.id, c.name
            ));
            if let Some(e) = c.email {
                text.push_str(&format!("    email: {}\n", email(e)));
            }
            if c.protect {
                text.push_str("    protect: true\n");
            }
            let mut access = format!("give_access: {}, notify: {}", c.access, c.notify);
            if let Some(role) = c.role {
                access.push_str(&format!(", role: role{role}"));
            }
            if c.website {
                access.push_str(", website: web");
            }
            if let Some(day) = c.expires {
                access.push_str(&format!(", expires: \"{}\"", date(START_DAY + day)));
            }
            if c.password {
                access.push_str(", password: { env: PORTICO_TEST_PW }");
            } else if c.password_file {
                access.push_str(", password: { file: ../password.txt }");
            }
            text.push_str(&format!("    access: {{ {access} }}\n"));
            if !c.contacts.is_empty() {
                text.push_str("    contacts:\n");
            }
            for k in &c.contacts {
                let role = k
                    .role
                    .map(|r| format!(", role: role{r}"))
                    .unwrap_or_default();
                text.push_str(&format!(
                    "      - {{ email: {}, access: {}, notify: true{role} }}\n",
                    email(k.email),
                    k.access
                ));
            }
        }
        text
    }

    /// Writes the files that differ from the model, each edited in place with its
    /// modification time kept (the hardest edit for git's index to notice: only the change
    /// time, and maybe the size, say it), and removes the files the model no longer has.
    fn write(&self, env: &Env) {
        let root = env.path("manifests");
        std::fs::create_dir_all(root.join("customers")).unwrap();
        put(&root.join("account.yaml"), &self.account());
        put(
            &root.join("subject.txt"),
            &format!("Access v{}", self.template),
        );
        put(
            &root.join("body.txt"),
            "Hello {{ email }}: {{ set_password_url }}",
        );
        let secrets = match self.password_file {
            0 => Some((
                "a-long-enough-file-password\n",
                "a-client-secret-long-enough-for-the-provider\n",
            )),
            1 => Some(("short\n", "short\n")),
            _ => None,
        };
        for (at, name) in ["password.txt", "client-secret.txt"].iter().enumerate() {
            match secrets {
                Some(texts) => put(&root.join(name), [texts.0, texts.1][at]),
                None => {
                    let _ = std::fs::remove_file(root.join(name));
                }
            }
        }
        for entry in std::fs::read_dir(root.join("customers")).unwrap() {
            let path = entry.unwrap().path();
            let stem = path.file_stem().unwrap().to_string_lossy().to_string();
            if !self.files.contains_key(&stem) {
                std::fs::remove_file(path).unwrap();
            }
        }
        for (name, customers) in &self.files {
            let path = root.join(format!("customers/{name}.yaml"));
            put(&path, &Model::customers(customers));
        }
    }

    fn edit(&mut self, (file, at, field, value): (usize, usize, u8, usize)) {
        let Some(name) = self.file_at(file) else {
            return;
        };
        let list = self.files.get_mut(&name).unwrap();
        if list.is_empty() {
            return;
        }
        let len = list.len();
        let c = &mut list[at % len];
        match field {
            0 => c.name = c.name.wrapping_add(1),
            1 => c.access = !c.access,
            2 => c.role = [None, Some(0), Some(1), Some(2)][value % 4],
            3 => c.website = !c.website,
            4 => c.notify = !c.notify,
            5 => c.protect = !c.protect,
            6 => c.expires = [None, Some(3), Some(12), Some(40)][value % 4],
            7 => c.email = Some(value % EMAILS),
            8 if c.contacts.len() < 3 => c.contacts.push(Contact {
                email: value % EMAILS,
                access: value % 2 == 0,
                role: (value % 3 == 0).then_some(2),
            }),
            8 => {
                c.contacts.pop();
            }
            _ => {
                c.password = c.id == 0 && !c.password;
                c.password_file = c.id == 1 && !c.password_file;
            }
        }
    }

    fn apply_op(&mut self, op: &Op) {
        match *op {
            Op::Edit {
                file,
                at,
                field,
                value,
            } => self.edit((file, at, field, value)),
            Op::Add { file, id, email } => {
                let name = self.file_at(file).unwrap_or_else(|| "a".into());
                self.files.entry(name).or_default().push(Customer {
                    id,
                    name: 0,
                    email: Some(email),
                    access: true,
                    role: None,
                    website: false,
                    notify: false,
                    protect: false,
                    expires: None,
                    password: false,
                    password_file: false,
                    contacts: Vec::new(),
                });
            }
            Op::Remove { file, at } => {
                if let Some(name) = self.file_at(file) {
                    let list = self.files.get_mut(&name).unwrap();
                    if !list.is_empty() {
                        let len = list.len();
                        list.remove(at % len);
                    }
                }
            }
            Op::Move { file, at, to } => {
                let (Some(from), Some(to)) = (self.file_at(file), self.file_at(to)) else {
                    return;
                };
                let list = self.files.get_mut(&from).unwrap();
                if list.is_empty() {
                    return;
                }
                let len = list.len();
                let c = list.remove(at % len);
                self.files.get_mut(&to).unwrap().push(c);
            }
            Op::AddFile { name } => {
                self.files.entry(FILES[name].to_string()).or_default();
            }
            Op::RemoveFile { file } => {
                if let Some(name) = self.file_at(file) {
                    self.files.remove(&name);
                }
            }
            Op::Reorder { file } => {
                if let Some(name) = self.file_at(file) {
                    self.files.get_mut(&name).unwrap().reverse();
                }
            }
            Op::RenameFile { file, name } => {
                if let Some(old) = self.file_at(file)
                    && !self.files.contains_key(FILES[name])
                {
                    let list = self.files.remove(&old).unwrap();
                    self.files.insert(FILES[name].to_string(), list);
                }
            }
            Op::Account { kind } => match kind {
                0 => self.invoice_level = self.invoice_level.wrapping_add(1),
                1 => self.policy = !self.policy,
                2 => self.template = self.template.wrapping_add(1),
                3 => self.spare_role = !self.spare_role,
                _ => self.client = (self.client + 1) % 4,
            },
            Op::Secret { kind } if (3..6).contains(&kind) => self.password_file = kind - 3,
            _ => {}
        }
    }
}

/// Writes `text` to `path` unless it holds it already; an existing file is edited in place
/// and keeps its modification time.
fn put(path: &std::path::Path, text: &str) {
    if std::fs::read(path).ok().as_deref() == Some(text.as_bytes()) {
        return;
    }
    let before = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    std::fs::write(path, text).unwrap();
    if let Some(time) = before {
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(time).unwrap();
    }
}

/// What a plan printed, for comparing: exit code, standard output, standard error without
/// the line `--verbose` adds.
type Seen = (i32, String, String);

/// The clock (days after the start) and the password variable's value every run gets.
#[derive(Clone, Copy)]
struct World {
    day: i64,
    secret: Option<&'static str>,
    /// The OpenID Connect client's secret variable.
    client_secret: Option<&'static str>,
    /// How files are read: 0 as by default, 1 `--policy-warn-only`, 2 `--max-file-size 1`
    /// (the same files read, another setting recorded), 3 `--max-file-size 0` (none read).
    reading: u8,
    /// Customers per run of items a changed file is compared by, on average
    /// (`PORTICO_GROUP_ITEMS`; 1: each alone).
    runs: u8,
}

impl World {
    fn command(&self, env: &Env, args: &[&str]) -> assert_cmd::Command {
        let mut cmd = env.portico(args);
        cmd.env("PORTICO_NOW", date(START_DAY + self.day));
        // Every file of customers is parsed in pieces of a few items, except by the full
        // plan each plan is compared with: that one reads each file whole.
        let whole = args.contains(&"--no-incremental");
        cmd.env("PORTICO_PARSE_PIECE", if whole { "0" } else { "64" });
        cmd.env("PORTICO_GROUP_ITEMS", self.runs.to_string());
        // The list of files in pages of 1, 2 or 4 files on average (256 by default): an
        // apply rewrites some pages and keeps the others.
        let page = 1u32 << self.runs.saturating_sub(1).min(2);
        cmd.env("PORTICO_INDEX_PAGE_FILES", page.to_string());
        match self.secret {
            Some(value) => cmd.env("PORTICO_TEST_PW", value),
            None => cmd.env_remove("PORTICO_TEST_PW"),
        };
        match self.client_secret {
            Some(value) => cmd.env("PORTICO_TEST_CLIENT_SECRET", value),
            None => cmd.env_remove("PORTICO_TEST_CLIENT_SECRET"),
        };
        cmd.env_remove("PORTICO_POLICY_WARN_ONLY")
            .env_remove("PORTICO_MAX_FILE_SIZE");
        match self.reading {
            1 => cmd.env("PORTICO_POLICY_WARN_ONLY", "true"),
            2 => cmd.env("PORTICO_MAX_FILE_SIZE", "1"),
            3 => cmd.env("PORTICO_MAX_FILE_SIZE", "0"),
            _ => &mut cmd,
        };
        cmd
    }

    fn now(&self) -> String {
        date(START_DAY + self.day)
    }
}

fn plan(env: &Env, world: World, extra: &[&str]) -> Seen {
    let mut args = vec!["plan", "-f", "manifests"];
    args.extend_from_slice(extra);
    let (code, out, err) = run(world.command(env, &args));
    let err = err
        .lines()
        .filter(|l| {
            !l.starts_with("Planned from the changed files") && !l.starts_with("Planning in full")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    (code, out, err)
}

/// Plans incrementally and in full, as text and as JSON, and asserts they agree. Returns
/// whether the incremental plan answered (rather than falling back), whether it read a
/// changed file in part, and whether it knew files unchanged from git's index.
fn compare(env: &Env, world: World, step: &str) -> (bool, bool, bool) {
    let mut incremental = false;
    let mut in_part = false;
    let mut from_git = false;
    for format in ["text", "json"] {
        let verbose = ["plan", "-f", "manifests", "--format", format, "-v"];
        let (_, _, err) = run(world.command(env, &verbose));
        incremental |= err.contains("Planned from the changed files");
        in_part |= err.contains("read in part)");
        from_git |= err.contains("known from git's index");
        let fast = plan(env, world, &["--format", format]);
        let full = plan(env, world, &["--format", format, "--no-incremental"]);
        assert_eq!(fast, full, "{format} plans differ after {step}");
    }
    (incremental, in_part, from_git)
}

fn sql(env: &Env, kind: u8) {
    let statement = match kind {
        // Outside portico: a managed column.
        0 => {
            "UPDATE customers SET name = 'Edited outside' WHERE id = (SELECT min(id) FROM customers)"
        }
        1 => "UPDATE logins SET access = 1 - access WHERE email = (SELECT min(email) FROM logins)",
        // The login service's runtime writes.
        2 => {
            "UPDATE logins SET failed_attempts = failed_attempts + 1, last_login_at = '2030-01-01T00:00:00Z'"
        }
        3 => {
            "UPDATE logins SET password_hash = 'not-a-real-hash' WHERE email = (SELECT max(email) FROM logins)"
        }
        _ => "UPDATE logins SET password_hash = NULL WHERE password_hash IS NOT NULL",
    };
    let fixed = if env.is_sqlite() {
        statement.to_string()
    } else {
        statement.replace("1 - access", "NOT access")
    };
    if env.is_sqlite() && !env.db_path().exists() {
        return;
    }
    if env
        .rows(env.pick(
            "SELECT name FROM sqlite_master WHERE name = 'logins'",
            "SELECT table_name::text FROM information_schema.tables WHERE table_name = 'logins'",
        ))
        .is_empty()
    {
        return;
    }
    env.sql(&fixed);
}

fn apply(env: &Env, world: World, kind: u8) {
    let now = world.now();
    let mut args = vec![
        "apply",
        "-f",
        "manifests",
        "--auto-approve",
        "--now",
        now.as_str(),
    ];
    match kind {
        1 => args.push("--no-prune"),
        2 => {
            let saved = ["plan", "-f", "manifests", "--out", "saved.json"];
            if run(world.command(env, &saved)).0 != 0 {
                return;
            }
            args = vec![
                "apply",
                "--plan",
                "saved.json",
                "-f",
                "manifests",
                "--auto-approve",
            ];
        }
        _ => {}
    }
    let (code, _, _) = run(world.command(env, &args));
    // Right after an apply from these files, the index it recorded describes them: a plan
    // that answers from it finds no file changed, and none finds it damaged (a page of the
    // list kept when its files had changed shows here, where the plans themselves still
    // agree: a damaged index only makes the plan full).
    if kind == 0 && code == 0 {
        let (_, _, err) = run(world.command(env, &["plan", "-f", "manifests", "-v"]));
        assert!(!err.contains("damaged"), "after an apply: {err}");
        if let Some(line) = err
            .lines()
            .find(|l| l.starts_with("Planned from the changed"))
        {
            assert!(line.contains("only: 0 of "), "after an apply: {line}");
        }
    }
}

/// Runs git in the test's folder (the work tree the manifests are in).
fn git(env: &Env, args: &[&str]) {
    let status = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=portico",
            "-c",
            "user.email=portico@example.com",
        ])
        .args(args)
        .current_dir(env.path(""))
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdout(std::process::Stdio::null())
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?}");
}

/// Records the files in git's index (`kind` as in [`Op::Git`]).
fn git_add(env: &Env, kind: u8) {
    if kind > 0 {
        // Past the clock's grain: the entries are older than the index written after them.
        std::thread::sleep(std::time::Duration::from_millis(15));
    }
    git(env, &["add", "-A"]);
    if kind == 2 {
        git(env, &["commit", "-q", "--allow-empty", "-m", "step"]);
    }
}

/// What a sequence found: steps the incremental plan answered, read a file in part, and
/// knew files unchanged from git's index.
#[derive(Default)]
struct Found {
    answered: usize,
    in_part: usize,
    from_git: usize,
}

fn run_sequence(env: &Env, ops: &[Op], runs: u8, in_git: bool) -> Found {
    let mut model = Model::start();
    model.write(env);
    if in_git {
        git(env, &["init", "-q"]);
        std::fs::write(env.path(".gitignore"), "*.db*\nsaved.json\n").unwrap();
        git_add(env, 1);
    }
    let long = "a-long-enough-password";
    let mut world = World {
        day: 0,
        secret: Some(long),
        client_secret: Some("a-client-secret-from-a-variable-long-enough"),
        reading: 0,
        runs,
    };
    let mut found = Found::default();
    apply(env, world, 0);
    for (n, op) in ops.iter().enumerate() {
        model.apply_op(op);
        model.write(env);
        match *op {
            Op::Sql { kind } => sql(env, kind),
            Op::Apply { kind } => apply(env, world, kind),
            Op::Time { days } => world.day += days,
            Op::Secret { kind } if kind < 3 => {
                world.secret = [None, Some("short"), Some(long)][usize::from(kind)];
            }
            Op::Secret { kind } if kind >= 6 => {
                let secrets = [
                    None,
                    Some("short"),
                    Some("a-client-secret-from-a-variable-long-enough"),
                ];
                world.client_secret = secrets[usize::from(kind - 6)];
            }
            Op::Reading { kind } => world.reading = kind,
            Op::Git { kind } if in_git => git_add(env, kind),
            _ => {}
        }
        let step = format!("step {n}: {op:?} of {ops:?} (in git: {in_git})");
        let (answer, part, from_git) = compare(env, world, &step);
        found.answered += usize::from(answer);
        found.in_part += usize::from(part);
        found.from_git += usize::from(from_git);
    }
    found
}

fn cases() -> u32 {
    std::env::var("PORTICO_INCREMENTAL_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(8)
}

/// The suite's default seed: its sequences answer from the changed files on both engines
/// (a random seed now and then drew four sequences that never did, and the test failed
/// proving nothing). Another seed explores further.
const SEED: u64 = 3;

fn seed() -> proptest::test_runner::RngSeed {
    use proptest::test_runner::RngSeed;
    match std::env::var("PORTICO_INCREMENTAL_SEED").as_deref() {
        Ok("random") => {
            let seed = rand_seed();
            eprintln!("PORTICO_INCREMENTAL_SEED={seed}");
            RngSeed::Fixed(seed)
        }
        Ok(number) => RngSeed::Fixed(
            number
                .parse()
                .expect("PORTICO_INCREMENTAL_SEED is a number or `random`"),
        ),
        Err(_) => RngSeed::Fixed(SEED),
    }
}

/// A seed from the clock, printed so a failure can be run again.
fn rand_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64)
}

fn property(make: fn() -> Env) {
    let config = ProptestConfig {
        cases: cases(),
        rng_seed: seed(),
        max_shrink_iters: 20,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    let total = std::sync::Mutex::new(Found::default());
    proptest!(config, |(ops in proptest::collection::vec(op(), 8..16), runs in 1..4u8, in_git: bool)| {
        let env = make();
        let found = run_sequence(&env, &ops, runs, in_git);
        let mut total = total.lock().unwrap();
        total.answered += found.answered;
        total.in_part += found.in_part;
        total.from_git += found.from_git;
    });
    let Found {
        answered,
        in_part,
        from_git,
    } = total.into_inner().unwrap();
    eprintln!(
        "the incremental plan answered {answered} steps itself, {in_part} reading a file in part, \
         {from_git} knowing files unchanged from git's index"
    );
    assert!(
        answered > 0 && in_part > 0 && from_git > 0,
        "the incremental plan never answered, never read a file in part, or never used git's \
         index: the test proves nothing (draw more sequences with PORTICO_INCREMENTAL_CASES, or \
         another seed)"
    );
}

#[test]
fn incremental_plans_equal_full_plans_on_sqlite() {
    property(Env::sqlite);
}

#[test]
fn incremental_plans_equal_full_plans_on_postgres() {
    property(Env::postgres);
}

/// The starting model with no password sources, written and applied.
fn applied_without_passwords(env: &Env) -> Model {
    let mut model = Model::start();
    for customer in model.files.values_mut().flatten() {
        customer.password = false;
        customer.password_file = false;
    }
    model.write(env);
    env.apply();
    model
}

/// The everyday case takes the incremental path, and says so with `--verbose`; a write
/// outside portico sends the next plan back to reading everything, and says why.
fn says_how_it_planned(env: Env) {
    let model = applied_without_passwords(&env);
    let mut edited = model.clone();
    edited.edit((0, 0, 0, 0));
    edited.write(&env);
    let (code, _, err) = env.plan(&["-v"]);
    assert_eq!(code, 0, "{err}");
    // A file of fewer customers than two runs of items is read whole (the property test
    // reads files in part, with runs of one customer).
    assert!(
        err.contains(
            "Planned from the changed files only: 1 of 3 files changed, 0 removed; 2 customers read."
        ),
        "{err}"
    );
    env.sql("UPDATE customers SET name = 'Edited outside' WHERE id = 'C3'");
    let (_, out, err) = env.plan(&["-v"]);
    assert!(
        err.contains("Planning in full: the database was written since the last apply"),
        "{err}"
    );
    assert!(out.contains("C3"), "the outside edit is in the plan: {out}");
    env.apply();
    // A comment in the account file: read in full, and an apply with nothing to change
    // records the files, so the next plan is incremental again.
    let account = env.path("manifests/account.yaml");
    let text = std::fs::read_to_string(&account).unwrap();
    std::fs::write(&account, format!("# reviewed\n{text}")).unwrap();
    let (_, _, err) = env.plan(&["-v"]);
    assert!(
        err.contains("Planning in full: account.yaml changed and declares more than customers"),
        "{err}"
    );
    // A plan with nothing to change that says it read `files` of the 3 again.
    let nothing_planned_reading = |files: usize| {
        let (code, _, err) = env.plan(&["-v", "--detailed-exitcode"]);
        assert_eq!(code, 0, "{err}");
        let said = format!("Planned from the changed files only: {files} of 3 files changed");
        assert!(err.contains(&said), "{err}");
    };
    assert!(env.apply().contains("No changes"), "nothing to change");
    nothing_planned_reading(0);
    // A comment in a file of customers: read again by an incremental plan, nothing to
    // change, and its apply records the file as it is now (its page, not the whole list),
    // so the next plan reads nothing.
    let mut files: Vec<_> = std::fs::read_dir(env.path("manifests/customers"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    let text = std::fs::read_to_string(&files[0]).unwrap();
    std::fs::write(&files[0], format!("# reviewed\n{text}")).unwrap();
    nothing_planned_reading(1);
    assert!(env.apply().contains("No changes"), "nothing to change");
    nothing_planned_reading(0);
    // Applied again reading everything, with nothing to change and the files as recorded:
    // its index (of every file) lists the pages recorded, and nothing is written (SQLite
    // raises the file's change counter, bytes 24-27 of its header, at every write).
    if env.is_sqlite() {
        let counter = || std::fs::read(env.db_path()).unwrap()[24..28].to_vec();
        let before = counter();
        let full = [
            "apply",
            "-f",
            "manifests",
            "--auto-approve",
            "--no-incremental",
        ];
        let (code, out, err) = run(env.portico(&full));
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("No changes"), "nothing to change: {out}");
        assert_eq!(counter(), before, "an apply with nothing to change wrote");
    }
}

crate::common::on_every_engine!(says_how_it_planned);

/// An apply whose new plan index cannot be made (as when a page of the old index it must
/// cut again does not read; made on another thread while the apply writes) still applies its
/// plan, and removes the index: the plans after it read every file, and the next apply
/// records an index again. With nothing to change, the index is left as it was, and the
/// plans after it stay incremental and exact.
fn an_index_that_cannot_be_made_is_removed(env: Env) {
    let model = applied_without_passwords(&env);
    let indexed = |env: &Env| env.rows("SELECT CAST(count(*) AS TEXT) FROM plan_index")[0].clone();
    assert_eq!(indexed(&env), "1");
    let apply_unmade = || {
        let mut cmd = env.portico(&["apply", "-f", "manifests", "--auto-approve"]);
        cmd.env("PORTICO_TEST_INDEX_UNMADE", "1");
        let (code, out, err) = run(cmd);
        assert_eq!(code, 0, "{err}");
        out
    };
    let mut edited = model.clone();
    edited.edit((0, 0, 0, 0));
    edited.write(&env);
    let (_, planned, _) = env.plan(&[]);
    let out = apply_unmade();
    assert!(out.contains("Apply complete"), "{out}");
    assert_eq!(indexed(&env), "0", "the index is removed");
    for table in ["plan_index_pages", "plan_index_files"] {
        let rows = env.rows(&format!("SELECT CAST(count(*) AS TEXT) FROM {table}"));
        assert_eq!(rows, ["0"], "{table}");
    }
    let (code, out, err) = env.plan(&["-v", "--detailed-exitcode"]);
    assert_eq!(code, 0, "the plan was applied ({planned}): {out}{err}");
    assert!(err.contains("Planning in full: no plan index"), "{err}");
    assert!(env.apply().contains("No changes"), "nothing to change");
    assert_eq!(indexed(&env), "1", "the next apply records an index");
    let (_, _, err) = env.plan(&["-v"]);
    assert!(
        err.contains("Planned from the changed files only: 0 of 3 files changed"),
        "{err}"
    );
    // Nothing to change, a file commented: the index stays as recorded.
    let account = env.path("manifests/customers/a.yaml");
    let text = std::fs::read_to_string(&account).unwrap();
    std::fs::write(&account, format!("# reviewed\n{text}")).unwrap();
    assert!(apply_unmade().contains("No changes"), "nothing to change");
    let (code, _, err) = env.plan(&["-v", "--detailed-exitcode"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("Planned from the changed files only: 1 of 3 files changed"),
        "{err}"
    );
    for format in ["text", "json"] {
        let fast = env.plan(&["--format", format]);
        assert_eq!(
            fast,
            env.plan(&["--format", format, "--no-incremental"]),
            "{format}"
        );
    }
}

crate::common::on_every_engine!(an_index_that_cannot_be_made_is_removed);

/// A plan of `folder`'s manifests, with `--verbose`: its output, and how many files it said
/// git's index knew unchanged (`None`: it did not say).
fn plan_in(env: &Env, folder: &str, format: &str) -> (String, Option<usize>) {
    let manifests = format!("{folder}/manifests");
    let verbose = ["plan", "-f", &manifests, "-v", "--format", format];
    let (code, out, err) = run(env.portico(&verbose));
    assert!(code == 0 || code == 2, "{err}");
    let known = err
        .split(" unchanged files known from git's index")
        .next()
        .filter(|_| err.contains("known from git's index"))
        .and_then(|before| before.rsplit(' ').next()?.parse().ok());
    let full = run(env.portico(&[
        "plan",
        "-f",
        &manifests,
        "--format",
        format,
        "--no-incremental",
    ]));
    assert_eq!(out, full.1, "the plan of {folder} is the full plan: {err}");
    (out, known)
}

/// Edits `path` in place to `text` of the same size, keeping its modification time: only
/// its change time tells.
fn edit_keeping_mtime(path: &std::path::Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from) && from.len() == to.len());
    let before = std::fs::metadata(path).unwrap().modified().unwrap();
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(before).unwrap();
}

/// In a git work tree (a fresh clone, as CI plans), a plan reads only the files git's index
/// does not know unchanged: a file edited in place (same size, same modification time) is
/// read, and so is one flagged `--assume-unchanged`, one not yet in the index, every file
/// when the index is as old as its entries (racily clean), and a file whose checkout
/// converts its line ends. Each plan equals the full plan.
fn a_git_work_tree_is_planned_from_git_s_index(env: Env) {
    applied_without_passwords(&env);
    git(&env, &["init", "-q"]);
    std::fs::write(env.path(".gitignore"), "*.db*\nclone*/\n").unwrap();
    git_add(&env, 2);
    git(&env, &["clone", "-q", ".", "clone"]);
    // A clone writes its few files in the instant it writes its index: they are racily
    // clean, and read. `git status` a moment later writes the index again (a bigger
    // checkout leaves only its last files so).
    std::thread::sleep(std::time::Duration::from_millis(15));
    git(&env, &["-C", "clone", "status", "--porcelain"]);
    // Every manifest file unchanged, known so from the clone's index.
    let manifests = ["account.yaml", "customers/a.yaml", "customers/b.yaml"];
    let (_, known) = plan_in(&env, "clone", "text");
    assert_eq!(known, Some(manifests.len()));
    // Edited in place, size and modification time kept.
    let a = env.path("clone/manifests/customers/a.yaml");
    edit_keeping_mtime(&a, " v0\n", " v1\n");
    let (out, known) = plan_in(&env, "clone", "text");
    assert!(out.contains("1 to update"), "{out}");
    assert_eq!(known, Some(manifests.len() - 1));
    // Flagged as unchanged: read all the same.
    let b = "manifests/customers/b.yaml";
    let clone = |args: &[&str]| {
        let mut all = vec!["-C", "clone"];
        all.extend_from_slice(args);
        git(&env, &all);
    };
    clone(&["update-index", "--assume-unchanged", b]);
    let (_, known) = plan_in(&env, "clone", "json");
    assert_eq!(known, Some(manifests.len() - 2));
    // A new file, not in the index.
    std::fs::write(
        env.path("clone/manifests/customers/new.yaml"),
        "customers: []\n",
    )
    .unwrap();
    let (_, known) = plan_in(&env, "clone", "text");
    assert_eq!(known, Some(manifests.len() - 2));
    // The index as old as its entries: none is trusted.
    let index = std::fs::File::options()
        .write(true)
        .open(env.path("clone/.git/index"))
        .unwrap();
    index.set_modified(std::time::UNIX_EPOCH).unwrap();
    let (_, known) = plan_in(&env, "clone", "text");
    assert_eq!(known, None);
    // Line ends converted at checkout: git's blob is the file as applied, the file on disk
    // is not (its size differs), and it is read.
    std::fs::write(env.path(".gitattributes"), "*.yaml text eol=crlf\n").unwrap();
    git_add(&env, 2);
    git(&env, &["clone", "-q", ".", "clone-crlf"]);
    let converted = std::fs::read(env.path("clone-crlf/manifests/customers/a.yaml")).unwrap();
    assert!(
        converted.windows(2).any(|w| w == b"\r\n"),
        "checked out with CRLF"
    );
    let (out, known) = plan_in(&env, "clone-crlf", "json");
    assert_eq!(known, None, "{out}");
}

crate::common::on_every_engine!(a_git_work_tree_is_planned_from_git_s_index);

/// A change spread over large files (a customer renamed here and there in each) reads only
/// the runs of customers around the edits, and plans what the full plan does; its apply
/// leaves the next plan incremental and empty. A file with an anchor is read whole.
fn files_edited_in_a_few_places_are_read_in_part(env: Env) {
    let mut model = Model::start();
    model.files.clear();
    model.spare_role = false;
    for (f, name) in FILES[..3].iter().enumerate() {
        let customers = (f * 60..(f + 1) * 60)
            .map(|id| Customer {
                id,
                name: 0,
                email: Some(id),
                access: true,
                role: Some(id % 2),
                website: false,
                notify: true,
                protect: false,
                expires: None,
                password: false,
                password_file: false,
                contacts: vec![],
            })
            .collect();
        model.files.insert(name.to_string(), customers);
    }
    model.write(&env);
    env.apply();
    for (f, at) in [(0, 7), (1, 30), (2, 59), (2, 0)] {
        model.edit((f, at, 0, 0));
    }
    model.write(&env);
    let (code, _, err) = env.plan(&["-v", "--detailed-exitcode"]);
    assert_eq!(code, 2, "{err}");
    let said =
        "Planned from the changed files only: 3 of 4 files changed (3 read in part), 0 removed;";
    assert!(err.contains(said), "{err}");
    let read: usize = err
        .split("removed; ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("a count of customers read");
    assert!(
        (4..60).contains(&read),
        "{read} of 180 customers read: {err}"
    );
    for format in ["text", "json"] {
        let fast = env.plan(&["--format", format]);
        let full = env.plan(&["--format", format, "--no-incremental"]);
        assert_eq!(fast, full, "{format}");
    }
    env.apply();
    let (code, out, err) = env.plan(&["-v", "--detailed-exitcode"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("Planned from the changed files only: 0 of 4 files changed"),
        "{err}"
    );
    // Every customer of a file edited: read in part, all of it parsed, applied and recorded.
    for at in 0..60 {
        model.edit((2, at, 0, 0));
    }
    model.write(&env);
    let (_, _, err) = env.plan(&["-v"]);
    let said = "1 of 4 files changed (1 read in part), 0 removed; 60 customers read.";
    assert!(err.contains(said), "{err}");
    env.apply();
    let (code, out, err) = env.plan(&["-v", "--detailed-exitcode"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("0 of 4 files changed"), "{err}");
    // An anchor and its alias: the file is read whole.
    let path = env.path("manifests/customers/b.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let anchored =
        text.replacen("role: role1", "role: &r role1", 1)
            .replacen("role: role1", "role: *r", 1);
    assert_ne!(anchored, text);
    std::fs::write(&path, anchored).unwrap();
    model.edit((0, 3, 0, 0));
    let a = Model::customers(&model.files["a"]);
    std::fs::write(env.path("manifests/customers/a.yaml"), a).unwrap();
    let (code, _, err) = env.plan(&["-v", "--detailed-exitcode"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("2 of 4 files changed (1 read in part), 0 removed;"),
        "{err}"
    );
    let fast = env.plan(&["--format", "json"]);
    assert_eq!(fast, env.plan(&["--format", "json", "--no-incremental"]));
    // A file's row that is not the index's (damaged, or left by another apply): in full.
    env.sql("UPDATE plan_index_files SET digest = 'not the file'");
    let (code, _, err) = env.plan(&["-v", "--detailed-exitcode"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("Planning in full: the plan index is damaged"),
        "{err}"
    );
}

crate::common::on_every_engine!(files_edited_in_a_few_places_are_read_in_part);

/// A plan that reads the files another way than the last apply did (`--policy-warn-only`,
/// `--max-file-size`) is planned in full, and says so; an apply that let a broken policy
/// through as a warning records no index at all.
fn a_plan_reading_files_another_way_is_planned_in_full(env: Env) {
    let warn_only = |args: &[&str]| {
        let mut cmd = env.portico(args);
        cmd.env("PORTICO_POLICY_WARN_ONLY", "true");
        run(cmd)
    };
    let mut model = Model::start();
    for customer in model.files.values_mut().flatten() {
        customer.password = false;
        customer.password_file = false;
    }
    model.policy = true;
    model.write(&env);
    let apply = ["apply", "-f", "manifests", "--auto-approve"];
    let (code, _, err) = warn_only(&apply);
    assert_eq!(code, 0, "{err}");
    // Only file b changes.
    model.edit((1, 0, 0, 0));
    model.write(&env);
    let (code, _, err) = env.plan(&["-v"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(
            "Planning in full: --max-file-size or --policy-warn-only differ from the last apply"
        ),
        "{err}"
    );
    let (code, _, err) = warn_only(&["plan", "-f", "manifests", "-v"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("Planned from the changed files only"), "{err}");
    let (code, _, err) = warn_only(&["plan", "-f", "manifests", "-v", "--max-file-size", "1"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("Planning in full: --max-file-size"), "{err}");
    // Customer 0 (file a) gets a second contact: three logins, over the policy's two. Let
    // through as a warning, the apply records no index.
    model.edit((0, 0, 8, 12));
    model.write(&env);
    let (code, _, err) = warn_only(&apply);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("policy `few`"), "{err}");
    let (code, _, err) = env.plan(&["-v"]);
    assert_eq!(code, 1, "the broken policy is reported: {err}");
    assert!(err.contains("Planning in full: no plan index"), "{err}");
}

crate::common::on_every_engine!(a_plan_reading_files_another_way_is_planned_in_full);

/// An apply writes the catalog's standard roles only when they may be otherwise: anything
/// written to the managed tables since the last apply (the write count moved), or that
/// apply's build wrote other rows (their digest differs). A standard role changed where the
/// count cannot see stands for "untouched": the apply leaves it, proving it did not write.
fn standard_roles_are_written_only_when_they_may_differ(env: Env) {
    let mut model = applied_without_passwords(&env);
    let names = || env.rows("SELECT name FROM roles WHERE standard ORDER BY id");
    let permissions = || {
        env.rows(
            "SELECT p.role_id || ' ' || p.permission || ' ' || p.level FROM role_permissions p \
             JOIN roles r ON r.id = p.role_id WHERE r.standard ORDER BY 1",
        )
    };
    let (catalog, granted) = (names(), permissions());
    assert!(!granted.is_empty(), "the standard role grants permissions");
    let mut step = 0;
    let mut edit_and_apply = |model: &mut Model| {
        step += 1;
        model.edit((0, 0, 0, step));
        model.write(&env);
        env.apply();
    };
    // Unseen by the count: the next apply does not write the standard roles.
    env.sql(
        "UPDATE roles SET name = 'Unseen' WHERE standard; UPDATE managed_changes SET n = roles_at",
    );
    let count = || env.rows("SELECT CAST(n AS TEXT) FROM managed_changes")[0].parse::<i64>();
    let before = count().unwrap();
    edit_and_apply(&mut model);
    assert_eq!(
        names(),
        ["Unseen"],
        "the apply rewrote untouched standard roles"
    );
    if !env.is_sqlite() {
        // PostgreSQL's triggers skip the apply's own writes: it counts itself once.
        assert_eq!(
            count().unwrap(),
            before + 1,
            "the triggers counted the apply"
        );
    }
    // Seen: written again, permissions too.
    env.sql(
        "UPDATE roles SET name = 'Renamed outside' WHERE standard; \
         DELETE FROM role_permissions WHERE role_id IN (SELECT id FROM roles WHERE standard)",
    );
    edit_and_apply(&mut model);
    assert_eq!((names(), permissions()), (catalog.clone(), granted.clone()));
    // Another build's rows, with nothing written since its apply: written again.
    env.sql("UPDATE roles SET name = 'Older build' WHERE standard");
    env.sql(env.pick(
        "UPDATE managed_changes SET n = roles_at, roles_digest = X'00'",
        "UPDATE managed_changes SET n = roles_at, roles_digest = '\\x00'::bytea",
    ));
    edit_and_apply(&mut model);
    assert_eq!((names(), permissions()), (catalog, granted));
}

crate::common::on_every_engine!(standard_roles_are_written_only_when_they_may_differ);

/// An account of many one-customer files: their entries keep their ids (no file rows), the
/// list is stored in pages and an apply rewrites only the page of the file that changed, a
/// plan reads only that file and equals the full plan; a page damaged or missing makes the
/// plan full; removing most of the files removes their pages, and the next plan is
/// incremental again. A file of more customers keeps its ids in a row.
fn many_small_files_are_indexed_and_planned_from_the_changed_one(env: Env) {
    const FILES: usize = 5_003;
    env.write(
        "account.yaml",
        "features: { customer_access: true }\n\
         notifications: { url: http://127.0.0.1:9/x, login_url: https://p.example/login }\n\
         roles:\n  - { id: r1, name: R1, base: customer_center, permissions: { invoice: view } }\n",
    );
    let customer = |i: usize, name: &str| {
        format!(
            "  - id: C{i:05}\n    name: {name}\n    email: c{i}@x.example\n    access: {{ give_access: true, role: r1, notify: true }}\n"
        )
    };
    for i in 0..FILES {
        let text = format!("customers:\n{}", customer(i, "Customer"));
        env.write(&format!("customers/c{i:05}.yaml"), &text);
    }
    let big: String = (FILES..FILES + 5).map(|i| customer(i, "Big")).collect();
    env.write("customers/zz-big.yaml", &format!("customers:\n{big}"));
    env.apply();
    let rows = env.rows("SELECT path FROM plan_index_files");
    assert_eq!(rows, ["customers/zz-big.yaml"], "five customers: a row");
    let pages = || {
        let mut pages = env.rows(env.pick(
            "SELECT first || ' ' || hex(body) FROM plan_index_pages",
            "SELECT first || ' ' || encode(body, 'hex') FROM plan_index_pages",
        ));
        pages.sort();
        pages
    };
    let before = pages();
    assert!(before.len() > 10, "{} pages", before.len());
    let text = format!("customers:\n{}", customer(4321, "Renamed"));
    env.write("customers/c04321.yaml", &text);
    let (code, out, err) = env.plan(&["-v", "--detailed-exitcode"]);
    assert_eq!(code, 2, "{out}{err}");
    // Every customer file and account.yaml.
    let said = format!(
        "Planned from the changed files only: 1 of {} files changed, 0 removed; 1 customers read.",
        FILES + 2
    );
    assert!(err.contains(&said), "{err}");
    assert!(out.contains("name : Customer → Renamed"), "{out}");
    let fast = env.plan(&["--format", "json"]);
    assert_eq!(fast, env.plan(&["--format", "json", "--no-incremental"]));
    env.apply();
    let after = pages();
    assert_eq!(after.len(), before.len());
    let rewritten: Vec<&String> = after.iter().filter(|p| !before.contains(p)).collect();
    assert_eq!(
        rewritten.len(),
        1,
        "only the changed file's page is written"
    );
    let (code, _, err) = env.plan(&["-v", "--detailed-exitcode"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains(&format!("0 of {} files changed", FILES + 2)),
        "{err}"
    );
    // A page missing: a plan whose files in it did not change does not read it; once one
    // of them changes, the plan is full (and the same), and its apply records every page.
    let first = after[3].split(' ').next().unwrap().to_string();
    env.sql(&format!(
        "DELETE FROM plan_index_pages WHERE first = '{first}'"
    ));
    let (code, _, err) = env.plan(&["-v", "--detailed-exitcode"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("Planned from the changed files only"), "{err}");
    let number: usize = first["customers/c".len()..][..5].parse().unwrap();
    let text = format!("customers:\n{}", customer(number, "Edited"));
    env.write(&first, &text);
    let (code, out, err) = env.plan(&["-v", "--detailed-exitcode"]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("Planning in full: a page of the plan index is missing"),
        "{err}"
    );
    let fast = env.plan(&["--format", "json"]);
    assert_eq!(fast, env.plan(&["--format", "json", "--no-incremental"]));
    env.write(
        &first,
        &format!("customers:\n{}", customer(number, "Customer")),
    );
    let (code, _, err) = env.plan(&["-v", "--detailed-exitcode"]);
    assert_eq!(code, 0, "{err}");
    env.apply();
    let edited = format!("customers:\n{}", customer(number, "Edited"));
    env.write(&first, &edited);
    env.apply();
    env.write(
        &first,
        &format!("customers:\n{}", customer(number, "Customer")),
    );
    env.apply();
    assert_eq!(pages(), after, "every page recorded again, as before");
    // Keep two files: their pages go with them.
    for i in (0..FILES).filter(|&i| i != 7 && i != 4321) {
        env.remove(&format!("customers/c{i:05}.yaml"));
    }
    let limits = ["--max-destroy", "6000", "--max-destroy-share", "100"];
    let apply = [&["apply", "-f", "manifests", "--auto-approve"][..], &limits].concat();
    let (code, _, err) = run(env.portico(&apply));
    assert_eq!(code, 0, "{err}");
    assert!(pages().len() <= 4, "{:?}", pages().len());
    let (code, out, err) = env.plan(&["-v", "--detailed-exitcode"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("0 of 4 files changed"), "{err}");
    let fast = env.plan(&["--format", "json"]);
    assert_eq!(fast, env.plan(&["--format", "json", "--no-incremental"]));
}

crate::common::on_every_engine!(many_small_files_are_indexed_and_planned_from_the_changed_one);

/// An everyday apply's statements are prepared while its plan reads files (SQLite): its
/// write transaction compiles none (the count `PORTICO_TIMINGS` prints), whether a changed
/// file has a row in the plan index (many customers) or not (one customer), for a rename, a
/// new customer, a new login with its message and a login no longer notified; and what it
/// wrote is what was planned, on both engines (PostgreSQL compiles them in the transaction:
/// prepared ahead there, the apply was slower). A first apply compiles its own.
fn an_everyday_apply_compiles_no_statement_in_its_transaction(env: Env) {
    env.write(
        "account.yaml",
        "features: { customer_access: true }\n\
         notifications: { url: http://127.0.0.1:9/x, login_url: https://p.example/login }\n\
         roles:\n  - { id: r1, name: R1, base: customer_center, permissions: { invoice: view } }\n",
    );
    let customer = |i: usize, name: &str, contacts: &str| {
        format!(
            "  - id: C{i:03}\n    name: {name}\n    email: c{i}@x.example\n    access: {{ give_access: true, role: r1, notify: true }}\n{contacts}"
        )
    };
    let big = |renamed: &str, contacts: &str| -> String {
        let mut text = String::from("customers:\n");
        for i in 0..40 {
            let name = if i == 7 { renamed } else { "Customer" };
            let contacts = if i == 30 { contacts } else { "" };
            text.push_str(&customer(i, name, contacts));
        }
        text
    };
    let contact = "    contacts:\n      - { email: new30@x.example, name: New, access: true, notify: true }\n";
    env.write("customers/big.yaml", &big("Customer", ""));
    env.write(
        "customers/one.yaml",
        &format!("customers:\n{}", customer(100, "One", "")),
    );
    let timed_apply = || {
        let mut cmd = env.portico(&["apply", "-f", "manifests", "--auto-approve", "-v"]);
        cmd.env("PORTICO_TIMINGS", "1");
        let (code, out, err) = run(cmd);
        assert_eq!(code, 0, "{out}{err}");
        let compiled = err
            .lines()
            .find_map(|l| l.strip_prefix("timing: statements compiled in the write: "))
            .unwrap_or_else(|| panic!("no count: {err}"));
        (compiled.parse::<usize>().unwrap(), out, err)
    };
    let (first, ..) = timed_apply();
    assert!(first > 3, "a first apply compiles its statements: {first}");
    let added = customer(40, "Added", "");
    env.write("customers/big.yaml", &(big("Renamed", contact) + &added));
    env.write(
        "customers/one.yaml",
        &format!(
            "customers:\n{}",
            customer(100, "One", "").replace("role: r1, notify: true", "role: r1, notify: false")
        ),
    );
    let (compiled, out, err) = timed_apply();
    assert!(err.contains("Planned from the changed files only"), "{err}");
    assert!(
        out.contains("Renamed") && out.contains("new30@x.example"),
        "{out}"
    );
    assert!(out.contains("Added"), "{out}");
    if env.is_sqlite() {
        assert_eq!(compiled, 0, "{err}");
    }
    let (code, out, err) = env.plan(&["--detailed-exitcode"]);
    assert_eq!(code, 0, "applied as planned: {out}{err}");
    // Queued: the new contact's message and the new customer's; the one no longer
    // notified has none left (the first apply queued one for each login).
    let queued = env.rows(
        "SELECT customer_id || '/' || contact FROM notifications WHERE status = 0 ORDER BY 1",
    );
    let has = |login: &str| queued.iter().any(|q| q == login);
    assert!(has("C030/new30@x.example") && has("C040/"), "{queued:?}");
    assert!(has("C000/") && !has("C100/"), "{queued:?}");
}

crate::common::on_every_engine!(an_everyday_apply_compiles_no_statement_in_its_transaction);
