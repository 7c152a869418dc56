//! The plan as text for a terminal or a log: one block per change, then the summary.

use std::fmt::Write as _;

use anstyle::{AnsiColor, Style};
use similar::TextDiff;

use crate::plan::{Action, Address, Change, Object, Origin, Plan};

fn style(action: Action) -> (char, Style) {
    match action {
        Action::Create => ('+', AnsiColor::Green.on_default()),
        Action::Update => ('~', AnsiColor::Yellow.on_default()),
        Action::Revoke => ('!', AnsiColor::Magenta.on_default()),
        Action::Delete => ('-', AnsiColor::Red.on_default()),
    }
}

fn paint(color: bool, style: Style, text: &str) -> String {
    if color {
        format!("{}{text}{}", style.render(), style.render_reset())
    } else {
        text.to_string()
    }
}

/// Above this many changes, the text plan is a summary unless `--full` is given: a reviewer
/// reads counts and samples, not a 500,000-line wall; the JSON plan and `--full` have it all.
pub const SUMMARY_ABOVE: usize = 1000;

/// The plan in short: changes counted per resource kind and action, then the first
/// `per_kind` changes of each action (in apply order).
pub fn render_summary(plan: &Plan, per_kind: usize, color: bool) -> String {
    let mut out = String::new();
    if plan.is_empty() {
        return render_text(plan, false, color);
    }
    let _ = writeln!(
        out,
        "portico will make {} changes. Summary (the first {per_kind} changes of each kind; --full lists them all):\n",
        plan.changes.len()
    );
    counts_table(&mut out, plan);
    for action in ACTIONS {
        for kind in Address::KINDS {
            let of_kind: Vec<&Change> = plan
                .changes
                .iter()
                .filter(|c| c.action == action && c.address.kind() == kind)
                .collect();
            for change in of_kind.iter().take(per_kind) {
                render_change(&mut out, change, color);
            }
            if of_kind.len() > per_kind {
                let _ = writeln!(
                    out,
                    "  … and {} more {kind} changes to {}\n",
                    of_kind.len() - per_kind,
                    action.as_str()
                );
            }
        }
    }
    footer(&mut out, plan, color);
    out
}

/// The actions, in the order the summary counts them.
const ACTIONS: [Action; 4] = [
    Action::Create,
    Action::Update,
    Action::Revoke,
    Action::Delete,
];

/// How many changes of each kind the plan makes, by action (kinds without any left out).
fn counts_table(out: &mut String, plan: &Plan) {
    let mut counts = [[0usize; 4]; Address::KINDS.len()];
    for change in &plan.changes {
        let k = Address::KINDS
            .iter()
            .position(|k| *k == change.address.kind())
            .expect("every kind is listed");
        let a = ACTIONS
            .iter()
            .position(|a| *a == change.action)
            .expect("every action is listed");
        counts[k][a] += 1;
    }
    let _ = writeln!(
        out,
        "  {:<14} {:>9} {:>9} {:>9} {:>9}",
        "resource", "create", "update", "revoke", "delete"
    );
    for (kind, row) in Address::KINDS.iter().zip(&counts) {
        if row.iter().all(|n| *n == 0) {
            continue;
        }
        let _ = writeln!(
            out,
            "  {kind:<14} {:>9} {:>9} {:>9} {:>9}",
            row[0], row[1], row[2], row[3]
        );
    }
    out.push('\n');
}

/// The plan as text. `diff` adds a unified diff of each changed object; `color` adds ANSI
/// styles (the caller strips them when the output is not a terminal).
pub fn render_text(plan: &Plan, diff: bool, color: bool) -> String {
    let mut out = String::new();
    if plan.is_empty() {
        out.push_str("No changes. The live database matches the manifests.\n");
    } else {
        out.push_str("portico will make these changes, in this order:\n\n");
        for change in &plan.changes {
            render_change(&mut out, change, color);
            if diff {
                out.push_str(&indent(&render_diff(change, color), "      "));
            }
        }
        out.push('\n');
    }
    footer(&mut out, plan, color);
    out
}

/// Warnings, the counts and the digest.
fn footer(out: &mut String, plan: &Plan, color: bool) {
    for warning in &plan.warnings {
        let _ = writeln!(
            out,
            "{} {warning}",
            paint(color, AnsiColor::Yellow.on_default().bold(), "warning:")
        );
    }
    let _ = writeln!(
        out,
        "{}",
        paint(color, Style::new().bold(), &plan.summary().to_string())
    );
    if !plan.is_empty() {
        let _ = writeln!(out, "Plan digest: {}", plan.digest());
    }
}

fn render_change(out: &mut String, change: &Change, color: bool) {
    let (symbol, style) = style(change.action);
    let head = format!("{symbol} {:<6}", change.action.as_str());
    let origin = match change.origin {
        Origin::Manifests => String::new(),
        Origin::Outside => paint(
            color,
            AnsiColor::Cyan.on_default(),
            "  (changed outside portico)",
        ),
    };
    let reason = change
        .reason
        .as_ref()
        .map(|r| paint(color, AnsiColor::Magenta.on_default(), &format!("  ({r})")))
        .unwrap_or_default();
    let _ = writeln!(
        out,
        "  {} {}{origin}{reason}",
        paint(color, style.bold(), &head),
        paint(color, Style::new().bold(), &change.address.to_string())
    );
    let fields = change.fields();
    let width = fields
        .iter()
        .map(|f| f.field.chars().count())
        .max()
        .unwrap_or(0);
    for field in fields.iter() {
        // Multi-line text (a message template) reads as a diff of its lines.
        let multiline =
            |v: &Option<String>| v.as_deref().is_some_and(|v| v.trim_end().contains('\n'));
        if change.action != Action::Delete && (multiline(&field.old) || multiline(&field.new)) {
            let _ = writeln!(out, "        {} :", field.field);
            let (old, new) = (
                field.old.as_deref().unwrap_or(""),
                field.new.as_deref().unwrap_or(""),
            );
            for line in TextDiff::from_lines(old, new).iter_all_changes() {
                let (sign, style) = match line.tag() {
                    similar::ChangeTag::Delete => ('-', AnsiColor::Red.on_default()),
                    similar::ChangeTag::Insert => ('+', AnsiColor::Green.on_default()),
                    similar::ChangeTag::Equal => (' ', Style::new()),
                };
                let text = format!(
                    "{sign} {}",
                    crate::unicode::escape_invisible(line.value().trim_end_matches('\n'))
                );
                let _ = writeln!(out, "          {}", paint(color, style, &text));
            }
            continue;
        }
        let line = match (change.action, &field.old, &field.new) {
            (Action::Create, _, Some(new)) => format!("{:<width$} = {}", field.field, quote(new)),
            (Action::Delete, _, _) => continue,
            (_, old, new) => format!("{:<width$} : {} → {}", field.field, show(old), show(new)),
        };
        let _ = writeln!(out, "        {line}");
    }
    if change.notifies() {
        let _ = writeln!(out, "        (a new-access notification will be sent)");
    }
}

fn show(value: &Option<String>) -> String {
    value.as_deref().map_or_else(|| "(none)".to_string(), quote)
}

/// Quotes values that would otherwise be ambiguous (empty, padded, or holding control or
/// invisible format characters, which are shown as `\u{…}`), so what is shown is exactly
/// what is stored.
fn quote(value: &str) -> String {
    if value.is_empty() || value.trim() != value || value.chars().any(crate::unicode::is_invisible)
    {
        format!(
            "\"{}\"",
            crate::unicode::escape_invisible(value).replace('"', "\\\"")
        )
    } else {
        value.to_string()
    }
}

fn object_text(object: Option<&Object>) -> String {
    object
        .map(|o| {
            o.fields()
                .into_iter()
                .map(|(k, v)| format!("{k}: {}\n", quote(&v)))
                .collect()
        })
        .unwrap_or_default()
}

/// A unified diff of the live and desired versions of one object.
pub fn render_diff(change: &Change, color: bool) -> String {
    let old = object_text(change.before.as_ref());
    let new = object_text(change.after.as_ref());
    let diff = TextDiff::from_lines(&old, &new);
    let address = change.address.to_string();
    let text = diff
        .unified_diff()
        .context_radius(3)
        .header(&format!("live {address}"), &format!("desired {address}"))
        .to_string();
    text.lines()
        .map(|line| {
            let style = match line.chars().next() {
                Some('+') => AnsiColor::Green.on_default(),
                Some('-') => AnsiColor::Red.on_default(),
                Some('@') => AnsiColor::Cyan.on_default(),
                _ => Style::new(),
            };
            format!("{}\n", paint(color, style, line))
        })
        .collect()
}

fn indent(text: &str, prefix: &str) -> String {
    text.lines()
        .map(|line| format!("{prefix}{line}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::tests::plan_of;

    #[test]
    fn the_summary_counts_every_kind_and_samples_each() {
        let mut text = String::from(
            "features: { customer_access: true }\npolicies:\n  - id: no-pay\n    message: nobody pays online\n    max_level: { permission: customer_payment, level: view }\ncustomers:\n",
        );
        for i in 0..5 {
            text.push_str(&format!(
                "  - {{ id: C{i}, name: Customer {i}, email: c{i}@x.example }}\n"
            ));
        }
        let plan = plan_of(&text);
        let summary = render_summary(&plan, 2, false);
        assert!(
            summary.contains("  policy                 1         0         0         0"),
            "{summary}"
        );
        assert!(
            summary.contains("  customer               5         0         0         0"),
            "{summary}"
        );
        assert!(summary.contains("policy[\"no-pay\"]"), "{summary}");
        assert!(
            summary.contains("… and 3 more customer changes to create"),
            "{summary}"
        );
    }
}
