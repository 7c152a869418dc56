//! Where a large file of customers can be cut so that its pieces are parsed on several
//! cores. Only the plainest layout is cut: one document whose only top-level key is
//! `customers:`, every later line either a comment, blank, an item of that list at the
//! list's own indentation, or indented deeper. Each piece is parsed as `customers:` plus
//! its items; the pieces' lists, joined, are the file's list. Whatever this does not
//! recognise, or any piece that does not parse cleanly (an alias to an anchor of another
//! piece, a quoted or flow value left open at a cut), is parsed whole instead, so the
//! result and every diagnostic are those of reading the file in one piece.

use std::ops::Range;

/// What precedes each piece after the first.
pub const HEADER: &str = "customers:\n";

/// The byte ranges of the pieces of `text`, each about `target` bytes and starting at an
/// item of the list (the first at 0); `None` when the file is not cut.
pub fn pieces(text: &str, target: usize) -> Option<Vec<Range<usize>>> {
    if target == 0 || text.len() < target * 2 {
        return None;
    }
    let mut lines = Lines { text, at: 0 };
    header(&mut lines)?;
    let mut indent = None;
    let mut cuts = vec![0];
    let mut last = 0;
    for (start, line) in lines {
        let spaces = line.len() - line.trim_start_matches(' ').len();
        let rest = line[spaces..].trim_end_matches(['\r', '\n']);
        if rest.trim().is_empty() || rest.starts_with('#') {
            continue;
        }
        let item = rest == "-" || rest.starts_with("- ");
        let indent = *indent.get_or_insert(spaces);
        if spaces < indent || (spaces == indent && !item) {
            return None;
        }
        if spaces == indent && item && start - last >= target && start > 0 {
            cuts.push(start);
            last = start;
        }
    }
    indent?;
    if cuts.len() < 2 {
        return None;
    }
    let mut ranges: Vec<Range<usize>> = cuts.windows(2).map(|w| w[0]..w[1]).collect();
    ranges.push(*cuts.last().expect("two cuts or more")..text.len());
    Some(ranges)
}

/// Skips the lines before the first item: comments, blank lines and one `customers:`.
fn header(lines: &mut Lines) -> Option<()> {
    let mut seen = false;
    loop {
        let before = lines.at;
        let (_, line) = lines.next()?;
        let trimmed = line.trim_end_matches(['\r', '\n']);
        let content = trimmed.trim_start_matches(' ');
        if content.trim().is_empty() || content.starts_with('#') {
            continue;
        }
        let key = trimmed
            .strip_prefix("customers:")
            .filter(|rest| rest.trim().is_empty() || rest.starts_with(" #"));
        match key {
            Some(_) if !seen => seen = true,
            _ if seen => {
                lines.at = before;
                return Some(());
            }
            _ => return None,
        }
    }
}

/// The lines of a text with their start offsets, line ends kept.
struct Lines<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Iterator for Lines<'a> {
    type Item = (usize, &'a str);

    fn next(&mut self) -> Option<(usize, &'a str)> {
        if self.at >= self.text.len() {
            return None;
        }
        let start = self.at;
        let end = self.text[start..]
            .find('\n')
            .map_or(self.text.len(), |i| start + i + 1);
        self.at = end;
        Some((start, &self.text[start..end]))
    }
}

#[cfg(test)]
mod tests {
    use super::pieces;

    #[test]
    fn cuts_only_the_plain_layout() {
        let items: String = (0..40)
            .map(|i| format!("- id: C{i}\n  name: N\n"))
            .collect();
        let text = format!("# customers\ncustomers:\n{items}");
        let cut = pieces(&text, 64).expect("cut");
        assert!(cut.len() > 2);
        assert_eq!(cut[0].start, 0);
        assert_eq!(cut.last().unwrap().end, text.len());
        for range in &cut[1..] {
            assert!(text[range.clone()].starts_with("- id: C"));
        }
        // Indented items are cut at their own indentation only.
        let indented = format!(
            "customers:\n{}",
            items.replace("- ", "  - ").replace("\n  n", "\n    n")
        );
        assert!(pieces(&indented, 64).unwrap().len() > 2);
        // Anything else is parsed whole.
        assert_eq!(pieces(&format!("roles: []\ncustomers:\n{items}"), 64), None);
        assert_eq!(pieces(&format!("customers:\n{items}roles: []\n"), 64), None);
        assert_eq!(
            pieces(&format!("customers:\n{items}---\ncustomers: []\n"), 64),
            None
        );
        assert_eq!(
            pieces(&format!("%YAML 1.2\n---\ncustomers:\n{items}"), 64),
            None
        );
        assert_eq!(pieces(&format!("customers:\n{items}"), 100_000), None);
    }
}
