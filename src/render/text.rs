//! The plan as text for a terminal or a log: one block per change, then the summary.

use std::fmt::Write as _;

use anstyle::{AnsiColor, Style};
use similar::TextDiff;

use crate::plan::{Action, Change, Object, Origin, Plan};

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
    out
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
    let _ = writeln!(
        out,
        "  {} {}{origin}",
        paint(color, style.bold(), &head),
        paint(color, Style::new().bold(), &change.address.to_string())
    );
    let width = change
        .fields
        .iter()
        .map(|f| f.field.chars().count())
        .max()
        .unwrap_or(0);
    for field in &change.fields {
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
