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

/// Where the sequence item at `path` (a customer) stands in document `doc` of `text`: the
/// byte range from its `-` to the end of its last content line, and the `-`'s column.
///
/// # Errors
/// A message when the item is not a block-style sequence entry (flow style cannot be edited
/// without rewriting its neighbours).
pub fn item_range(
    text: &str,
    doc: usize,
    path: &YamlPath,
) -> Result<(usize, usize, usize), String> {
    let at = locate(text, doc, path, false).ok_or("cannot find it in the file")?;
    let starts = line_starts(text);
    let line_index = at.line - 1;
    let line_start = starts[line_index];
    let line_end = starts.get(line_index + 1).copied().unwrap_or(text.len());
    let line = &text[line_start..line_end];
    let prefix: String = line.chars().take(at.column - 1).collect();
    let dash = prefix.trim_end();
    if !dash.ends_with('-') || !dash[..dash.len() - 1].chars().all(|c| c == ' ') {
        return Err("it is not written as a block-style list entry (`- id: …`)".into());
    }
    let dash_col = dash.len() - 1;
    let mut end = line_end;
    for (i, start) in starts.iter().enumerate().skip(line_index + 1) {
        let stop = starts.get(i + 1).copied().unwrap_or(text.len());
        let line = &text[*start..stop];
        let content = line.trim();
        if content.is_empty() {
            continue;
        }
        let indent = indentation(line);
        if indent <= dash_col || (indent == 0 && (content == "---" || content == "...")) {
            break;
        }
        if content.starts_with('#') {
            continue;
        }
        end = stop;
    }
    Ok((line_start + dash_col, end, dash_col))
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

/// Applies non-overlapping splices to `text`.
pub fn apply(text: &str, mut splices: Vec<Splice>) -> String {
    splices.sort_by_key(|s| s.start);
    let mut out = String::with_capacity(text.len());
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
    fn flow_style_is_refused() {
        let text = "customers: [{id: A, name: Alpha}]\n";
        let path = YamlPath::default().key("customers").index(0);
        assert!(item_range(text, 0, &path).is_err());
    }
}
