//! The messages' templates (minijinja): the new-access message and the password reset: a subject, a plain-text body and an
//! optional HTML body, either the admin's files or the built-in ones. Values are escaped in
//! the HTML body; an unknown variable or a template that cannot render is found at plan
//! time by [`check`], never after a commit.

use minijinja::{AutoEscape, Environment, UndefinedBehavior, Value};

use crate::state::TemplateSources;

/// The built-in templates, saying what NetSuite's access email says.
pub const DEFAULT_SUBJECT: &str = include_str!("templates/access.subject");
/// The built-in plain-text body.
pub const DEFAULT_TEXT: &str = include_str!("templates/access.txt");
/// The built-in HTML body.
pub const DEFAULT_HTML: &str = include_str!("templates/access.html");

/// The built-in password-reset message (`forgot password` on `portico serve`).
pub const RESET_SUBJECT: &str = include_str!("templates/reset.subject");
/// The built-in reset plain-text body.
pub const RESET_TEXT: &str = include_str!("templates/reset.txt");
/// The built-in reset HTML body.
pub const RESET_HTML: &str = include_str!("templates/reset.html");

/// Which message a template is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The new-access message an apply queues.
    NewAccess,
    /// The password-reset message "forgot password" queues.
    Reset,
}

impl Kind {
    /// The key under `notifications` that holds this message's template files.
    pub fn key(self) -> &'static str {
        match self {
            Kind::NewAccess => "template",
            Kind::Reset => "reset_template",
        }
    }

    /// The built-in subject, text and HTML.
    fn built_in(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Kind::NewAccess => (DEFAULT_SUBJECT, DEFAULT_TEXT, DEFAULT_HTML),
            Kind::Reset => (RESET_SUBJECT, RESET_TEXT, RESET_HTML),
        }
    }
}

/// Every variable a template may use, with what it holds (the user guide and `--help` list them).
pub const VARIABLES: &[(&str, &str)] = &[
    ("email", "the login's email address"),
    ("name", "the contact's name (may be empty)"),
    ("customer", "the customer's name"),
    ("customer_id", "the customer's id"),
    ("role", "the role's display name"),
    ("website", "the website's name (may be empty)"),
    ("login_url", "where to log in"),
    (
        "set_password_url",
        "the single-use set-password link (empty when a password was assigned)",
    ),
    (
        "link_expires_at",
        "when that link stops working, for people (`2 December 2026, 14:05 UTC`)",
    ),
    ("reply_to", "the administrator's address (`reply_to`)"),
    (
        "password_assigned",
        "true when the admin assigned an initial password",
    ),
];

/// The values of one message.
#[derive(Clone, Debug, Default)]
pub struct Vars {
    pub email: String,
    pub name: Option<String>,
    pub customer: String,
    pub customer_id: String,
    pub role: String,
    pub website: Option<String>,
    pub login_url: Option<String>,
    pub set_password_url: Option<String>,
    pub link_expires_at: Option<String>,
    pub reply_to: Option<String>,
    pub password_assigned: bool,
}

impl Vars {
    fn context(&self) -> Value {
        minijinja::context! {
            email => self.email.clone(),
            name => self.name.clone(),
            customer => self.customer.clone(),
            customer_id => self.customer_id.clone(),
            role => self.role.clone(),
            website => self.website.clone(),
            login_url => self.login_url.clone(),
            set_password_url => self.set_password_url.clone(),
            link_expires_at => self.link_expires_at.clone(),
            reply_to => self.reply_to.clone(),
            password_assigned => self.password_assigned,
        }
    }

    /// Stand-in values for trial renders (both password cases are tried).
    fn sample(password_assigned: bool) -> Vars {
        Vars {
            email: "jane@example.com".into(),
            name: Some("Jane Doe".into()),
            customer: "Example Ltd".into(),
            customer_id: "example".into(),
            role: "Customer Center".into(),
            website: Some("Example portal".into()),
            login_url: Some("https://portal.example.com/login".into()),
            set_password_url: (!password_assigned)
                .then(|| "https://portal.example.com/set-password?token=x".into()),
            link_expires_at: (!password_assigned).then(|| "2026-01-01T00:00:00Z".into()),
            reply_to: Some("admin@example.com".into()),
            password_assigned,
        }
    }
}

/// A rendered message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rendered {
    /// One line.
    pub subject: String,
    pub text: String,
    pub html: Option<String>,
}

/// Which template a problem is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Subject,
    Text,
    Html,
}

impl Part {
    /// The key under `notifications.template`.
    pub fn key(self) -> &'static str {
        match self {
            Part::Subject => "subject",
            Part::Text => "text",
            Part::Html => "html",
        }
    }
}

/// A template problem: which part, the 1-based line when known, and what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub part: Part,
    pub line: Option<usize>,
    pub message: String,
}

/// Compiled templates, ready to render many messages.
pub struct Templates {
    env: Environment<'static>,
    html: bool,
}

impl Templates {
    /// Compiles the admin's templates, or the built-in ones of `kind`.
    ///
    /// # Errors
    /// The first problem found (plan time runs [`check`], so this is rare: a database edited
    /// by hand).
    pub fn new(sources: Option<&TemplateSources>, kind: Kind) -> Result<Templates, Problem> {
        let (subject, text, html) = match sources {
            Some(t) => (t.subject.clone(), t.text.clone(), t.html.clone()),
            None => {
                let (subject, text, html) = kind.built_in();
                (
                    subject.to_string(),
                    text.to_string(),
                    Some(html.to_string()),
                )
            }
        };
        let mut env = environment();
        let parts = [
            (Part::Subject, Some(subject)),
            (Part::Text, Some(text)),
            (Part::Html, html.clone()),
        ];
        for (part, source) in parts {
            if let Some(source) = source {
                env.add_template_owned(part.key(), source)
                    .map_err(|e| problem(part, &e))?;
                let template = env
                    .get_template(part.key())
                    .map_err(|e| problem(part, &e))?;
                if let Some((line, message)) = unsupported(&template) {
                    return Err(Problem {
                        part,
                        line,
                        message,
                    });
                }
            }
        }
        Ok(Templates {
            env,
            html: html.is_some(),
        })
    }

    /// Renders one message.
    ///
    /// # Errors
    /// A template that fails to render with these values.
    pub fn render(&self, vars: &Vars) -> Result<Rendered, Problem> {
        let context = vars.context();
        let render = |part: Part| {
            let template = self
                .env
                .get_template(part.key())
                .map_err(|e| problem(part, &e))?;
            let mut out = Capped(Vec::new());
            template
                .render_captured_to(&context, &mut out)
                .map_err(|e| problem(part, &e))?;
            Ok(String::from_utf8_lossy(&out.0).into_owned())
        };
        // A subject is one line: line breaks would start new headers.
        let subject = render(Part::Subject)?
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        Ok(Rendered {
            subject,
            text: render(Part::Text)?,
            html: if self.html {
                Some(render(Part::Html)?)
            } else {
                None
            },
        })
    }
}

/// The largest template source accepted, in bytes.
pub const MAX_TEMPLATE_BYTES: usize = 256 * 1024;
/// The largest rendered part, in bytes: far above any email, far below harm.
pub const MAX_OUTPUT_BYTES: usize = 1024 * 1024;
/// Instructions one render may run (an email runs a few hundred).
const FUEL: u64 = 200_000;
/// The deepest nesting of loops and conditions a render may reach.
const RECURSION_LIMIT: usize = 64;
/// The filters a template may use: none of them can make a value much larger than its input.
const FILTERS: &[&str] = &[
    "upper",
    "lower",
    "title",
    "capitalize",
    "trim",
    "default",
    "d",
    "escape",
    "e",
    "safe",
    "length",
    "count",
    "first",
    "last",
    "replace",
];

/// The one environment every template is compiled and rendered in: strict about unknown
/// variables, block tags that leave no blank lines, HTML escaped in the HTML part, and
/// bounded (fuel, recursion, a size-checked `replace`). Together with [`unsupported`],
/// which refuses the constructs that can grow a value without bound (`set`, macros,
/// calls, `*`), a template cannot hang or exhaust memory.
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(RECURSION_LIMIT);
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()
            .expect("default delimiters"),
    );
    env.set_auto_escape_callback(|name| {
        if name == "html" {
            AutoEscape::Html
        } else {
            AutoEscape::None
        }
    });
    env.add_filter("replace", replace);
    env.set_formatter(format_value);
    env
}

/// How a value is written into a message: nothing for an absent one (a customer's own login
/// has no `name`: never "none"), and in HTML only `& < > " '` escaped — minijinja's own
/// escaping also writes `/` as `&#x2f;`, which made every link look obfuscated to spam
/// filters.
fn format_value(
    out: &mut minijinja::Output,
    state: &mut minijinja::State<'_, '_>,
    value: &Value,
) -> Result<(), minijinja::Error> {
    if value.is_none() || value.is_undefined() {
        return Ok(());
    }
    if matches!(state.auto_escape(), AutoEscape::Html)
        && !value.is_safe()
        && let Some(text) = value.as_str()
    {
        let mut escaped = String::with_capacity(text.len() + 16);
        for c in text.chars() {
            match c {
                '&' => escaped.push_str("&amp;"),
                '<' => escaped.push_str("&lt;"),
                '>' => escaped.push_str("&gt;"),
                '"' => escaped.push_str("&quot;"),
                '\'' => escaped.push_str("&#39;"),
                _ => escaped.push(c),
            }
        }
        return out.write_str(&escaped).map_err(|_| {
            minijinja::Error::new(
                minijinja::ErrorKind::WriteFailure,
                "the message is too long",
            )
        });
    }
    minijinja::escape_formatter(out, state, value)
}

/// `replace`, refusing a result over [`MAX_OUTPUT_BYTES`] before building it.
fn replace(text: &str, from: &str, to: &str) -> Result<String, minijinja::Error> {
    let count = if from.is_empty() {
        text.chars().count() + 1
    } else {
        text.matches(from).count()
    };
    let size = text.len() as u128 + count as u128 * to.len() as u128;
    if size > MAX_OUTPUT_BYTES as u128 {
        return Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            format!("`replace` would make {size} bytes, more than the limit of {MAX_OUTPUT_BYTES}"),
        ));
    }
    Ok(text.replace(from, to))
}

/// A render's output, refused past [`MAX_OUTPUT_BYTES`].
struct Capped(Vec<u8>);

impl std::io::Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.0.len() + buf.len() > MAX_OUTPUT_BYTES {
            return Err(std::io::Error::other(format!(
                "the rendered message is larger than {} KiB",
                MAX_OUTPUT_BYTES / 1024
            )));
        }
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The first construct a message template may not use, with its line: assignments (`set`,
/// `with`), macros, calls, blocks, includes, attribute writes, `*` and `**`, and filters
/// outside [`FILTERS`]. What is left (variables, `if`, `for`, `~`, the listed filters)
/// cannot grow a value beyond the template's and the variables' size.
fn unsupported(template: &minijinja::Template<'_, '_>) -> Option<(Option<usize>, String)> {
    use minijinja::machinery::Instruction as I;
    let compiled = minijinja::machinery::get_compiled_template(template);
    let code = &compiled.instructions;
    let mut after_iterate = false;
    let mut index = 0;
    while let Some(instruction) = code.get(index) {
        let refused: Option<String> = match instruction {
            I::StoreLocal(_) | I::UnpackList(_) if !after_iterate => {
                Some("`set` and `with` are not supported in message templates".into())
            }
            I::BuildMacro(..) | I::Return | I::Enclose(_) | I::GetClosure => {
                Some("macros are not supported in message templates".into())
            }
            I::CallFunction(name, _) | I::CallMethod(name, _) => {
                Some(format!("`{name}()` is not supported in message templates"))
            }
            I::CallObject(_) | I::FastRecurse | I::FastSuper => {
                Some("calls are not supported in message templates".into())
            }
            I::CallBlock(_) | I::LoadBlocks | I::Include(_) | I::ExportLocals => {
                Some("blocks, includes and imports are not supported in message templates".into())
            }
            I::SetAttr(_) => {
                Some("attribute assignment is not supported in message templates".into())
            }
            I::Mul | I::Pow => Some("`*` and `**` are not supported in message templates".into()),
            I::BeginCapture(_) => {
                Some("`set` and `filter` blocks are not supported in message templates".into())
            }
            I::ApplyFilter(name, ..) if !FILTERS.contains(name) => Some(format!(
                "the filter `{name}` is not supported in message templates (supported: {})",
                FILTERS.join(", ")
            )),
            _ => None,
        };
        if let Some(message) = refused {
            return Some((code.get_line(index), message));
        }
        after_iterate = match instruction {
            I::Iterate(_) => true,
            I::DupTop | I::UnpackList(_) | I::StoreLocal(_) => after_iterate,
            _ => false,
        };
        index += 1;
    }
    None
}

fn problem(part: Part, error: &minijinja::Error) -> Problem {
    let message = match error.detail() {
        Some(detail) => format!("{}: {detail}", error.kind()),
        None => error.kind().to_string(),
    };
    Problem {
        part,
        line: error.line(),
        message,
    }
}

/// Every problem of a set of templates: syntax errors, variables portico does not provide
/// (with the line of their first use), and failures of trial renders with and without an
/// assigned password.
pub fn check(sources: &TemplateSources) -> Vec<Problem> {
    let mut problems = Vec::new();
    let parts = [
        (Part::Subject, Some(&sources.subject)),
        (Part::Text, Some(&sources.text)),
        (Part::Html, sources.html.as_ref()),
    ];
    for (part, source) in parts {
        let Some(source) = source else { continue };
        // Each part on its own, so a syntax error in one hides nothing in the others.
        let env = environment();
        if source.len() > MAX_TEMPLATE_BYTES {
            problems.push(Problem {
                part,
                line: None,
                message: format!(
                    "the template is {} KiB, more than the limit of {} KiB",
                    source.len() / 1024,
                    MAX_TEMPLATE_BYTES / 1024
                ),
            });
            continue;
        }
        let template = match env.template_from_named_str(part.key(), source) {
            Ok(t) => t,
            Err(e) => {
                problems.push(problem(part, &e));
                continue;
            }
        };
        if let Some(found) = unsupported(&template) {
            problems.push(Problem {
                part,
                line: found.0,
                message: found.1,
            });
            continue;
        }
        let mut unknown: Vec<String> = template
            .undeclared_variables(false)
            .into_iter()
            .filter(|v| !VARIABLES.iter().any(|(known, _)| known == v))
            .collect();
        unknown.sort();
        for name in unknown {
            let hint = strsim_best(&name)
                .map(|best| format!(" (did you mean `{best}`?)"))
                .unwrap_or_default();
            problems.push(Problem {
                part,
                line: first_use(source, &name),
                message: format!("unknown variable `{name}`{hint}"),
            });
        }
    }
    if problems.is_empty() {
        match Templates::new(Some(sources), Kind::NewAccess) {
            Err(problem) => problems.push(problem),
            Ok(templates) => {
                for assigned in [false, true] {
                    if let Err(problem) = templates.render(&Vars::sample(assigned)) {
                        problems.push(problem);
                        break;
                    }
                }
            }
        }
    }
    problems
}

fn strsim_best(name: &str) -> Option<&'static str> {
    VARIABLES
        .iter()
        .map(|(known, _)| (*known, strsim::jaro_winkler(name, known)))
        .filter(|(_, score)| *score > 0.8)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(known, _)| known)
}

/// The 1-based line where `name` first appears as a whole word.
fn first_use(source: &str, name: &str) -> Option<usize> {
    let word = |c: char| c.is_alphanumeric() || c == '_';
    source
        .lines()
        .position(|line| {
            line.match_indices(name).any(|(at, _)| {
                let before = line[..at].chars().next_back();
                let after = line[at + name.len()..].chars().next();
                !before.is_some_and(word) && !after.is_some_and(word)
            })
        })
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(text: &str) -> TemplateSources {
        TemplateSources {
            subject: "Hi {{ name }}".into(),
            text: text.into(),
            html: Some("<p>{{ customer }}</p>".into()),
        }
    }

    #[test]
    fn built_in_templates_render_both_password_cases() {
        let t = Templates::new(None, Kind::NewAccess).unwrap();
        let with_link = t.render(&Vars::sample(false)).unwrap();
        assert!(with_link.text.contains("set-password?token=x"));
        assert!(with_link.html.unwrap().contains("set-password?token=x"));
        let assigned = t.render(&Vars::sample(true)).unwrap();
        assert!(!assigned.text.contains("set-password"));
        assert!(assigned.text.contains("initial password"));
        assert_eq!(assigned.subject, "Your access to Example portal");
        let no_website = t
            .render(&Vars {
                website: None,
                ..Vars::sample(true)
            })
            .unwrap();
        assert_eq!(no_website.subject, "Your customer center access");
    }

    #[test]
    fn the_built_in_reset_message_carries_the_link_and_says_what_to_do_if_unasked() {
        let t = Templates::new(None, Kind::Reset).unwrap();
        let out = t.render(&Vars::sample(false)).unwrap();
        assert_eq!(out.subject, "Reset your password for Example portal");
        for body in [&out.text, out.html.as_ref().unwrap()] {
            assert!(body.contains("set-password?token=x"), "{body}");
            assert!(body.contains("ignore this email"), "{body}");
        }
    }

    #[test]
    fn links_are_written_plainly_and_an_absent_name_is_nothing() {
        let t = Templates::new(
            Some(&TemplateSources {
                subject: "s".into(),
                text: "Hello {{ name }}!".into(),
                html: Some("<a href=\"{{ set_password_url }}\">x</a> {{ name }}.".into()),
            }),
            Kind::NewAccess,
        )
        .unwrap();
        let vars = Vars {
            name: None,
            ..Vars::sample(false)
        };
        let out = t.render(&vars).unwrap();
        assert_eq!(out.text, "Hello !");
        let html = out.html.unwrap();
        assert!(
            html.contains("href=\"https://portal.example.com/set-password?token=x\""),
            "{html}"
        );
        assert!(html.ends_with("</a> ."), "{html}");
    }

    #[test]
    fn html_is_escaped_and_text_is_not() {
        let t = Templates::new(Some(&sources("{{ customer }}")), Kind::NewAccess).unwrap();
        let vars = Vars {
            customer: "<script>alert(1)</script> & Co".into(),
            ..Vars::sample(true)
        };
        let out = t.render(&vars).unwrap();
        assert_eq!(out.text, "<script>alert(1)</script> & Co");
        let html = out.html.unwrap();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }

    #[test]
    fn subject_is_one_line() {
        let t = Templates::new(
            Some(&TemplateSources {
                subject: "A\r\nBcc: x@example.com {{ name }}\n".into(),
                text: "t".into(),
                html: None,
            }),
            Kind::NewAccess,
        )
        .unwrap();
        let out = t.render(&Vars::sample(true)).unwrap();
        assert_eq!(out.subject, "A Bcc: x@example.com Jane Doe");
        assert_eq!(out.html, None);
    }

    #[test]
    fn unknown_variables_are_located() {
        let problems = check(&sources("line one\n\nDear {{ customer_nam }},\n"));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].part, Part::Text);
        assert_eq!(problems[0].line, Some(3));
        assert!(
            problems[0]
                .message
                .contains("unknown variable `customer_nam` (did you mean `customer"),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn templates_that_would_hang_or_exhaust_memory_are_refused_at_their_line() {
        let bombs = [
            // Doubling by assignment (2^60 bytes).
            format!("x\n{{% set a = 'xx' %}}{}", "{% set a = a ~ a %}".repeat(60)),
            // Exponential macros.
            "ok\n{% macro f(n) %}{{ f(n) }}{{ f(n) }}{% endmacro %}{{ f(1) }}".into(),
            // One replace making 10^12 bytes.
            "ok\n{{ ('x' * 1000000) | replace('x', 'x' * 1000000) }}".into(),
            "ok\n{{ email | replace('', email ~ email ~ email ~ email) | replace('', email ~ email ~ email) | replace('', email ~ email ~ email) }}".into(),
            // Nested loops over a long range.
            "ok\n{% for a in range(100000) %}{% for b in range(100000) %}x{% endfor %}{% endfor %}".into(),
            // Loops over a literal, nested deep: bounded by fuel.
            format!("ok\n{}x{}", "{% for a in 'abcdefghijklmnopqrstuvwxyz' %}".repeat(8), "{% endfor %}".repeat(8)),
            // Namespaces (mutation) and format bombs.
            "ok\n{{ '%999999999s' | format(email) }}".into(),
        ];
        for bomb in bombs {
            let started = std::time::Instant::now();
            let problems = check(&sources(&bomb));
            assert!(!problems.is_empty(), "accepted: {bomb}");
            assert_eq!(problems[0].part, Part::Text, "{problems:?}");
            assert!(problems[0].line.is_some(), "{bomb}: {problems:?}");
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "{bomb}"
            );
        }
        // A loop and the replace filter within bounds still work.
        let fine =
            "{% for c in 'ab' %}{{ c }}{% endfor %} {{ email | replace('@', ' at ') | upper }}";
        assert!(
            check(&sources(fine)).is_empty(),
            "{:?}",
            check(&sources(fine))
        );
        let t = Templates::new(Some(&sources(fine)), Kind::NewAccess).unwrap();
        assert_eq!(
            t.render(&Vars::sample(true)).unwrap().text,
            "ab JANE AT EXAMPLE.COM"
        );
    }

    #[test]
    fn syntax_and_render_errors_are_located() {
        let problems = check(&sources("ok\n{% if email %}\nno end"));
        assert_eq!(problems[0].part, Part::Text);
        assert!(problems[0].line.is_some(), "{problems:?}");
        let problems = check(&sources("ok\n{{ email | no_such_filter }}"));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].line, Some(2), "{problems:?}");
        assert!(check(&sources("{{ email }} {{ set_password_url }}")).is_empty());
    }
}
