//! The plan as Markdown for a pull-request comment: summary and a table first, details in
//! collapsible sections, always under GitHub's comment limit.

use std::fmt::Write as _;

use crate::plan::{Action, Origin, Plan};
use crate::unicode::escape_invisible;

/// Hidden marker that identifies portico's comment on a pull request.
pub const MARKER: &str = "<!-- portico-plan -->";

/// The most a comment may hold (GitHub allows 65,536 characters).
pub const LIMIT: usize = 65_000;

/// The hidden line carrying the plan digest, read back by `apply --expect-digest-from-pr`.
pub fn digest_marker(digest: &str) -> String {
    format!("<!-- portico-digest: {digest} -->")
}

fn icon(action: Action) -> &'static str {
    match action {
        Action::Create => "🟢",
        Action::Update => "🟡",
        Action::Revoke => "🟠",
        Action::Delete => "🔴",
    }
}

/// Escapes text for a table cell or a quote: invisible characters shown as `\u{…}`, the
/// characters Markdown reads as syntax escaped with a backslash, and `@name` and `#123` kept
/// from becoming a mention or an issue link (a word joiner after the sign: the same look,
/// nobody pinged).
fn cell(text: &str) -> String {
    let shown = escape_invisible(text);
    let mut out = String::with_capacity(shown.len() + 8);
    for c in shown.chars() {
        match c {
            '\n' | '\r' => out.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~' | '!' => {
                out.push('\\');
                out.push(c);
            }
            '@' | '#' => {
                out.push(c);
                out.push('\u{2060}');
            }
            _ => out.push(c),
        }
    }
    out
}

/// Text as an inline code span whose fence is longer than any run of backticks inside it
/// (CommonMark 6.1), so no id can close it early; `|` escaped for a table.
fn code_span(text: &str) -> String {
    let shown = escape_invisible(text)
        .replace(['\n', '\r'], " ")
        .replace('|', "\\|");
    let longest = shown.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    if longest > 0 || shown.starts_with(' ') || shown.ends_with(' ') {
        format!("{fence} {shown} {fence}")
    } else {
        format!("{fence}{shown}{fence}")
    }
}

/// A value inside the ```diff block: invisible characters shown, and quoted when it could
/// end the block or span lines.
fn value(text: &str) -> String {
    let shown = escape_invisible(text);
    if shown.contains('`') || shown.contains('\n') || shown.contains('\r') {
        format!("{shown:?}")
    } else {
        shown.into_owned()
    }
}

/// The plan as Markdown of at most `limit` characters.
pub fn render_markdown(plan: &Plan, limit: usize) -> String {
    let digest = plan.digest();
    let mut head = String::new();
    let _ = writeln!(head, "{MARKER}\n{}", digest_marker(&digest));
    let _ = writeln!(head, "### portico plan `{digest}`\n");
    let _ = writeln!(head, "**{}**\n", plan.summary());
    if plan.is_empty() {
        head.push_str("No changes. The live database matches the manifests.\n");
    }
    let mut tail = String::new();
    for warning in &plan.warnings {
        let _ = writeln!(tail, "> ⚠️ {}", cell(warning));
    }
    if !plan.warnings.is_empty() {
        tail.push('\n');
    }
    let _ = writeln!(tail, "Apply with `portico apply --expect-digest {digest}`.");
    let budget = limit.saturating_sub(head.len() + tail.len() + 400);

    let table = change_table(plan, budget);
    let details = change_details(plan, table.len(), budget);
    let mut out = head;
    out.push_str(&table);
    if !details.is_empty() {
        out.push('\n');
        out.push_str(&details);
    }
    out.push('\n');
    out.push_str(&tail);
    out
}

/// The table of changes, cut to half the budget.
fn change_table(plan: &Plan, budget: usize) -> String {
    let mut table = String::new();
    let mut shown = 0;
    if !plan.is_empty() {
        table.push_str("| | action | address | origin |\n|---|---|---|---|\n");
    }
    for change in &plan.changes {
        let origin = match (&change.reason, change.origin) {
            (Some(reason), _) => cell(reason),
            (None, Origin::Manifests) => "manifests".to_string(),
            (None, Origin::Outside) => "undoes an edit made outside portico".to_string(),
        };
        let email = if change.notifies() {
            " · sends a new-access email"
        } else {
            ""
        };
        let row = format!(
            "| {} | {} | {} | {origin}{email} |\n",
            icon(change.action),
            change.action.as_str(),
            code_span(&change.address.to_string())
        );
        if table.len() + row.len() > budget / 2 {
            break;
        }
        table.push_str(&row);
        shown += 1;
    }
    if shown < plan.changes.len() {
        let _ = writeln!(
            table,
            "\n_… and {} more changes not listed: the comment is limited to {LIMIT} characters; run `portico plan` for the full list._",
            plan.changes.len() - shown
        );
    }

    table
}

/// Each change's fields in a folded section, while the table (`table_len` long) and the
/// sections fit in the budget.
fn change_details(plan: &Plan, table_len: usize, budget: usize) -> String {
    let mut details = String::new();
    let mut detailed = 0;
    for change in &plan.changes {
        let section = details_of(change);
        if table_len + details.len() + section.len() > budget {
            break;
        }
        details.push_str(&section);
        detailed += 1;
    }
    if detailed < plan.changes.len() {
        let _ = writeln!(
            details,
            "\n_Details of {} more changes elided to stay under {LIMIT} characters._",
            plan.changes.len() - detailed
        );
    }
    details
}

/// One change's folded section: its fields as a diff.
fn details_of(change: &crate::plan::Change) -> String {
    let mut section = format!(
        "<details><summary>{} <code>{}</code>{}</summary>\n\n```diff\n",
        change.action.as_str(),
        html(&change.address.to_string()),
        change
            .reason
            .as_ref()
            .map(|r| format!(" ({})", html(r)))
            .unwrap_or_default()
    );
    for field in change.fields().iter() {
        match (&field.old, &field.new) {
            (Some(old), Some(new)) => {
                let _ = writeln!(
                    section,
                    "- {}: {}\n+ {}: {}",
                    field.field,
                    value(old),
                    field.field,
                    value(new)
                );
            }
            (None, Some(new)) => {
                let _ = writeln!(section, "+ {}: {}", field.field, value(new));
            }
            (Some(old), None) => {
                let _ = writeln!(section, "- {}: {}", field.field, value(old));
            }
            (None, None) => {}
        }
    }
    section.push_str("```\n");
    if change.notifies() {
        section.push_str("\nA new-access email will be sent to this login.\n");
    }
    section.push_str("</details>\n");
    section
}

fn html(text: &str) -> String {
    escape_invisible(text)
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The digest a portico comment carries, if `body` is one.
pub fn digest_in(body: &str) -> Option<String> {
    let start = body.find("<!-- portico-digest: ")? + "<!-- portico-digest: ".len();
    let rest = &body[start..];
    let end = rest.find(" -->")?;
    Some(rest[..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::tests::plan_of;

    fn customers(n: usize) -> String {
        let mut text = String::from("features: { customer_access: true }\ncustomers:\n");
        for i in 0..n {
            text.push_str(&format!(
                "  - {{ id: C{i}, name: Customer {i}, email: c{i}@x.example, access: {{ give_access: true, notify: true }} }}\n"
            ));
        }
        text
    }

    #[test]
    fn a_small_plan_lists_every_change_with_its_fields_and_the_digest() {
        let plan = plan_of(&customers(2));
        let body = render_markdown(&plan, LIMIT);
        let digest = plan.digest();
        assert!(body.starts_with(MARKER), "{body}");
        assert_eq!(digest_in(&body).as_deref(), Some(digest.as_str()));
        assert!(body.contains(&format!("portico apply --expect-digest {digest}")));
        for id in ["C0", "C1"] {
            assert!(body.contains(&format!("`customer[\"{id}\"]`")), "{body}");
            assert!(
                body.contains(&format!("<code>customer[\"{id}\"]</code>")),
                "{body}"
            );
        }
        assert!(body.contains("+ name: Customer 0"), "{body}");
        assert!(body.contains("sends a new-access email"), "{body}");
        assert!(!body.contains("more changes not listed"), "{body}");
        assert!(!body.contains("elided"), "{body}");
    }

    #[test]
    fn a_large_plan_stays_under_the_limit_and_says_what_it_left_out() {
        let plan = plan_of(&customers(400));
        let limit = 20_000;
        let body = render_markdown(&plan, limit);
        assert!(body.len() <= limit, "{} characters", body.len());
        assert!(body.contains("more changes not listed"), "{body}");
        assert!(body.contains("more changes elided"), "{body}");
        // The digest and the apply line survive the cut.
        assert!(body.ends_with(&format!(
            "Apply with `portico apply --expect-digest {}`.\n",
            plan.digest()
        )));
    }

    #[test]
    fn a_value_cannot_close_the_diff_fence() {
        let plan = plan_of(
            "features: { customer_access: true }\ncustomers:\n  - { id: C1, name: \"a ``` b\", email: c@x.example }\n",
        );
        let body = render_markdown(&plan, LIMIT);
        assert!(body.contains("+ name: \"a ``` b\""), "{body}");
        assert!(!body.contains("+ name: a ``` b"), "{body}");
    }
}
