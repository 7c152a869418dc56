//! Editing manifest files in place: one customer's block of a block-style `customers:` list
//! is replaced, every other byte of the file stays as it was.

use crate::manifest::model::Customer;
use crate::manifest::path::{YamlPath, locate};

/// A byte range of a file and its replacement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Splice {
    /// First byte replaced.
    pub start: usize,
    /// One past the last byte replaced.
    pub end: usize,
    /// The new text.
    pub text: String,
}

/// Byte offset of each line's start.
fn line_starts(text: &str) -> Vec<usize> {
    std::iter::once(0)
        .chain(text.match_indices('\n').map(|(i, _)| i + 1))
        .collect()
}

fn indentation(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

/// A list entry: first byte (its `-`), one past its last content line, the `-`'s column.
pub type Item = (usize, usize, usize);

/// Where the items of the block sequence at `sequence` (a `customers:` list) stand in
/// document `doc` of `text`, in order: for each, the byte range from its `-` to the end of
/// its last content line, and the `-`'s column. One pass over the file, however many items
/// change.
///
/// # Errors
/// A message when the list is not a block-style sequence (flow style cannot be edited
/// without rewriting its neighbours).
pub fn sequence_items(text: &str, doc: usize, sequence: &YamlPath) -> Result<Vec<Item>, String> {
    let at = locate(text, doc, &sequence.index(0), false).ok_or("cannot find it in the file")?;
    let starts = line_starts(text);
    let line_at = |i: usize| {
        let stop = starts.get(i + 1).copied().unwrap_or(text.len());
        &text[starts[i]..stop]
    };
    let first = at.line - 1;
    let prefix: String = line_at(first).chars().take(at.column - 1).collect();
    let dash = prefix.trim_end();
    if !dash.ends_with('-') || !dash[..dash.len() - 1].chars().all(|c| c == ' ') {
        return Err("it is not written as a block-style list entry (`- id: …`)".into());
    }
    let dash_col = dash.len() - 1;
    let mut items: Vec<Item> = Vec::new();
    for i in first..starts.len() {
        let line = line_at(i);
        let content = line.trim();
        if content.is_empty() || line.is_empty() {
            continue;
        }
        let indent = indentation(line);
        let is_item = indent == dash_col && (content == "-" || content.starts_with("- "));
        if is_item {
            let end = starts.get(i + 1).copied().unwrap_or(text.len());
            items.push((starts[i] + dash_col, end, dash_col));
            continue;
        }
        if indent <= dash_col {
            if content.starts_with('#') {
                continue;
            }
            break; // the sequence ended (a sibling key, a document marker)
        }
        if !content.starts_with('#')
            && let Some(item) = items.last_mut()
        {
            item.1 = starts.get(i + 1).copied().unwrap_or(text.len());
        }
    }
    Ok(items)
}

/// The YAML of a customer as a list entry whose `-` stands at column `dash_col`, with the
/// file's line ending. The first line carries no indentation: it replaces text that starts
/// at the `-`.
pub fn render_item(customer: &Customer, dash_col: usize, crlf: bool) -> String {
    let yaml = serde_yaml::to_string(customer).expect("a customer serialises");
    let pad = " ".repeat(dash_col + 2);
    let newline = if crlf { "\r\n" } else { "\n" };
    let mut out = String::new();
    for (i, line) in yaml.lines().enumerate() {
        if i == 0 {
            out.push_str("- ");
        } else if !line.is_empty() {
            out.push_str(&pad);
        }
        out.push_str(line);
        out.push_str(newline);
    }
    out
}

/// [`render_item`], keeping the comments of the entry it replaces (`old`, from its `-`):
/// lines that did not change are kept as they were (with their trailing comments), comment
/// lines stay before the line they stood before, and the trailing comment of a changed or
/// removed line becomes a comment line in its place. Only the changed fields are rewritten.
pub fn render_item_keeping_comments(
    old: &str,
    customer: &Customer,
    dash_col: usize,
    crlf: bool,
) -> String {
    let newline = if crlf { "\r\n" } else { "\n" };
    let fresh = render_item(customer, dash_col, false);
    let new_lines: Vec<&str> = fresh.lines().collect();
    // The old entry's content lines (code only, for comparing), each with the comment lines
    // just before it and its own trailing comment.
    let mut code: Vec<String> = Vec::new();
    let mut original: Vec<&str> = Vec::new();
    let mut before: Vec<Vec<&str>> = Vec::new();
    let mut pending: Vec<&str> = Vec::new();
    for line in old.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            pending.push(line);
            continue;
        }
        code.push(split_comment(line).0.trim_end().to_string());
        original.push(line);
        before.push(std::mem::take(&mut pending));
    }
    let code_refs: Vec<&str> = code.iter().map(String::as_str).collect();
    let diff = similar::TextDiff::from_slices(&code_refs, &new_lines);
    let mut out = String::new();
    let mut push = |line: &str| {
        out.push_str(line);
        out.push_str(newline);
    };
    for change in diff.iter_all_changes() {
        match (change.tag(), change.old_index()) {
            (similar::ChangeTag::Insert, _) => push(change.value()),
            (tag, Some(i)) => {
                for comment in &before[i] {
                    push(comment);
                }
                match (tag, split_comment(original[i]).1) {
                    (similar::ChangeTag::Equal, _) => push(original[i]),
                    (_, Some(comment)) => {
                        let indent = original[i].len() - original[i].trim_start().len();
                        let pad = if i == 0 { dash_col + 2 } else { indent };
                        push(&format!("{}{comment}", " ".repeat(pad)));
                    }
                    (_, None) => {}
                }
            }
            _ => {}
        }
    }
    for comment in pending {
        push(comment);
    }
    // The entry's text starts at its `-`: no indentation before the first line.
    out.trim_start_matches(' ').to_string()
}

/// The characters of a line's code outside quoted strings, each with its byte offset and
/// the character before it; and where a trailing `# comment` starts (a `#` after a space,
/// outside quotes), if there is one.
fn unquoted(line: &str) -> (Vec<(usize, char, char)>, Option<usize>) {
    let (mut out, mut quote, mut previous) = (Vec::new(), None, ' ');
    for (i, c) in line.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '\'' | '"') => quote = Some(c),
            (None, '#') if previous == ' ' || previous == '\t' => return (out, Some(i)),
            (None, c) => out.push((i, c, previous)),
        }
        previous = c;
    }
    (out, None)
}

/// A line's code and its trailing `# comment`, if any.
fn split_comment(line: &str) -> (&str, Option<&str>) {
    match unquoted(line).1 {
        Some(i) => (&line[..i], Some(&line[i..])),
        None => (line, None),
    }
}

/// The first YAML anchor (`&name`) or alias (`*name`) in an entry's text, outside comments
/// and quoted strings.
pub fn yaml_anchor(entry: &str) -> Option<String> {
    entry.lines().find_map(|line| {
        unquoted(line).0.into_iter().find_map(|(i, c, previous)| {
            let starts =
                matches!(c, '&' | '*') && matches!(previous, ' ' | '[' | '{' | ',' | '-' | ':');
            let name: String = line[i + c.len_utf8()..]
                .chars()
                .take_while(|c| !c.is_whitespace() && !",[]{}".contains(*c))
                .collect();
            (starts && !name.is_empty()).then(|| format!("{c}{name}"))
        })
    })
}

/// Applies non-overlapping splices to `text`.
pub fn apply(text: &str, mut splices: Vec<Splice>) -> String {
    splices.sort_by_key(|s| s.start);
    // Sized exactly: grown by pushing, the edited copies of a big account's files held up
    // to twice their length (29 MB more at 100,000 customers) while they were validated.
    let length = splices
        .iter()
        .fold(text.len(), |n, s| n + s.text.len() - (s.end - s.start));
    let mut out = String::with_capacity(length);
    let mut at = 0;
    for splice in splices {
        out.push_str(&text[at..splice.start]);
        out.push_str(&splice.text);
        at = splice.end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# head comment
customers:
  # first
  - id: A
    name: Alpha   # trailing
    contacts:
      - email: a@x.example

  # second
  - id: B
    name: Beta
roles: []
";

    fn customer(id: &str, name: &str) -> Customer {
        serde_yaml::from_str(&format!("id: {id}\nname: {name}\n")).unwrap()
    }

    fn item_range(
        text: &str,
        doc: usize,
        path: &YamlPath,
    ) -> Result<(usize, usize, usize), String> {
        let crate::manifest::path::Segment::Index(i) = path.0[1] else {
            unreachable!()
        };
        let items = sequence_items(text, doc, &YamlPath::default().key("customers"))?;
        Ok(items[i])
    }

    #[test]
    fn finds_a_block_item_without_its_neighbours_comments() {
        let path = YamlPath::default().key("customers").index(0);
        let (start, end, col) = item_range(FILE, 0, &path).unwrap();
        assert_eq!(col, 2);
        assert_eq!(
            &FILE[start..end],
            "- id: A\n    name: Alpha   # trailing\n    contacts:\n      - email: a@x.example\n"
        );
        let path = YamlPath::default().key("customers").index(1);
        let (start, end, _) = item_range(FILE, 0, &path).unwrap();
        assert_eq!(&FILE[start..end], "- id: B\n    name: Beta\n");
    }

    #[test]
    fn replacing_one_item_keeps_every_other_byte() {
        let path = YamlPath::default().key("customers").index(1);
        let (start, end, col) = item_range(FILE, 0, &path).unwrap();
        let text = render_item(&customer("B", "Beta Two"), col, false);
        let edited = apply(FILE, vec![Splice { start, end, text }]);
        assert_eq!(edited, FILE.replace("name: Beta\n", "name: Beta Two\n"));
        let reread: serde_yaml::Value = serde_yaml::from_str(&edited).unwrap();
        assert_eq!(reread["customers"][1]["name"].as_str(), Some("Beta Two"));
    }

    #[test]
    fn comments_inside_an_edited_entry_are_kept() {
        let old = "- id: A\n    # the big one\n    name: Alpha   # trailing\n    email: a@x.example  # billing\n    access: { give_access: true }   # flow\n";
        let changed: Customer = serde_yaml::from_str(
            "id: A\nname: Alpha Two\nemail: a@x.example\naccess: { give_access: true, notify: true }\n",
        )
        .unwrap();
        let text = render_item_keeping_comments(old, &changed, 2, false);
        for kept in [
            "# the big one",
            "# trailing",
            "email: a@x.example  # billing",
            "# flow",
        ] {
            assert!(text.contains(kept), "{kept} lost:\n{text}");
        }
        let edited = apply(FILE, {
            let path = YamlPath::default().key("customers").index(1);
            let (start, end, col) = item_range(FILE, 0, &path).unwrap();
            vec![Splice {
                start,
                end,
                text: render_item_keeping_comments(
                    &FILE[start..end],
                    &customer("B", "Beta Two"),
                    col,
                    false,
                ),
            }]
        });
        assert_eq!(edited, FILE.replace("name: Beta\n", "name: Beta Two\n"));
        let reread: Customer = serde_yaml::from_str(&text.replace("\n    ", "\n")[2..]).unwrap();
        assert_eq!(reread, changed, "{text}");
    }

    #[test]
    fn anchors_and_aliases_are_found_outside_strings_and_comments() {
        assert_eq!(
            yaml_anchor("- id: C1\n  access: &acc { give_access: true }\n").as_deref(),
            Some("&acc")
        );
        assert_eq!(
            yaml_anchor("- id: C2\n  access: *acc\n").as_deref(),
            Some("*acc")
        );
        assert_eq!(
            yaml_anchor("- id: C3\n  name: 'Smith & Sons *'\n  # see &x\n"),
            None
        );
        assert_eq!(yaml_anchor("- id: C4\n  name: R&D\n"), None);
    }

    #[test]
    fn flow_style_is_refused() {
        let text = "customers: [{id: A, name: Alpha}]\n";
        let path = YamlPath::default().key("customers").index(0);
        assert!(item_range(text, 0, &path).is_err());
    }
}
