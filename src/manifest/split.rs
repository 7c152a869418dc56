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
    let starts = item_starts(text)?;
    let mut cuts = vec![0];
    let mut last = 0;
    for &start in &starts {
        if start - last >= target && start > 0 {
            cuts.push(start);
            last = start;
        }
    }
    if cuts.len() < 2 {
        return None;
    }
    let mut ranges: Vec<Range<usize>> = cuts.windows(2).map(|w| w[0]..w[1]).collect();
    ranges.push(*cuts.last().expect("two cuts or more")..text.len());
    Some(ranges)
}

/// The byte ranges of the items of a file of the plainest layout (the header before the
/// first one is not part of any), when its items can be read one without the others: no
/// anchor or alias anywhere (the test is coarse: see [`has_anchor`]). `None` otherwise, and
/// for a file without items.
pub fn items(text: &str) -> Option<Vec<Range<usize>>> {
    if has_anchor(text) {
        return None;
    }
    let starts = item_starts(text)?;
    let mut ranges: Vec<Range<usize>> = starts.windows(2).map(|w| w[0]..w[1]).collect();
    ranges.push(*starts.last()?..text.len());
    Some(ranges)
}

/// A run of consecutive items, the unit an incremental plan compares: its item count and a
/// digest of its text (128 bits of SHA-256: a change made to look unchanged would take
/// 2^64 attempts). Where runs end depends on the items' own texts (after an item whose
/// digest's first byte is a multiple of [`GROUP_ITEMS`]), so an item added or removed
/// changes the runs around it only, not every run after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    /// The bytes of its items.
    pub range: Range<usize>,
    /// How many items.
    pub items: u32,
    /// The digest of its items' digests.
    pub digest: [u8; 16],
}

/// Items per run, on average (`PORTICO_GROUP_ITEMS` changes it, for tests).
pub const GROUP_ITEMS: u8 = 4;

/// The bytes of a group as stored: its digest, then its item count (little-endian).
pub const GROUP_BYTES: usize = 20;

/// The runs of items of `text` (see [`items`]); `None` when it has none.
pub fn groups(text: &str) -> Option<Vec<Group>> {
    groups_every(text, group_items())
}

/// Items per run, on average: [`GROUP_ITEMS`], or `PORTICO_GROUP_ITEMS` when set.
pub fn group_items() -> u8 {
    std::env::var("PORTICO_GROUP_ITEMS")
        .ok()
        .and_then(|v| v.parse::<u8>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(GROUP_ITEMS)
}

/// [`groups`] with runs of `every` items on average.
fn groups_every(text: &str, every: u8) -> Option<Vec<Group>> {
    use sha2::Digest as _;
    let items = items(text)?;
    let mut groups = Vec::new();
    let mut hasher = sha2::Sha256::new();
    let mut start = None;
    let mut count = 0u32;
    for range in items {
        let digest = sha2::Sha256::digest(&text.as_bytes()[range.clone()]);
        hasher.update(digest);
        let from = *start.get_or_insert(range.start);
        count += 1;
        if digest[0] % every == 0 {
            groups.push(finish(&mut hasher, from..range.end, count));
            start = None;
            count = 0;
        }
    }
    if let Some(from) = start {
        groups.push(finish(&mut hasher, from..text.len(), count));
    }
    Some(groups)
}

fn finish(hasher: &mut sha2::Sha256, range: Range<usize>, items: u32) -> Group {
    use sha2::Digest as _;
    let full = hasher.finalize_reset();
    let mut digest = [0u8; 16];
    digest.copy_from_slice(&full[..16]);
    Group {
        range,
        items,
        digest,
    }
}

/// Groups as stored ([`GROUP_BYTES`] each; the ranges are not kept).
pub fn encode(groups: &[Group]) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(groups.len() * GROUP_BYTES);
    for group in groups {
        bytes.extend_from_slice(&group.digest);
        bytes.extend_from_slice(&group.items.to_le_bytes());
    }
    bytes
}

/// `(digest, item count)` of each stored group; `None` when the bytes are not groups.
pub fn decode(bytes: &[u8]) -> Option<Vec<([u8; 16], u32)>> {
    if !bytes.len().is_multiple_of(GROUP_BYTES) {
        return None;
    }
    bytes
        .chunks_exact(GROUP_BYTES)
        .map(|chunk| {
            let digest: [u8; 16] = chunk[..16].try_into().ok()?;
            let items = u32::from_le_bytes(chunk[16..].try_into().ok()?);
            (items > 0).then_some((digest, items))
        })
        .collect()
}

/// Whether `text` may hold a YAML anchor (`&name`) or alias (`*name`): a `&` or `*` where a
/// node can start (first on a line, or after a space, a tab, `[`, `{`, `,` or `:`) and
/// before a character other than a space. Coarse on purpose: `Smith &Co` in a quoted
/// name counts too (the file is then read whole); `R&D` or `?a=1&b=2` do not.
fn has_anchor(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.iter().enumerate().any(|(at, &b)| {
        let starts_node = at == 0
            || matches!(
                bytes[at - 1],
                b' ' | b'\t' | b'\n' | b'\r' | b'[' | b'{' | b',' | b':'
            );
        (b == b'&' || b == b'*')
            && starts_node
            && bytes
                .get(at + 1)
                .is_some_and(|next| !next.is_ascii_whitespace())
    })
}

/// Where each item of the list starts, when `text` has the plainest layout (see the module).
fn item_starts(text: &str) -> Option<Vec<usize>> {
    let mut lines = Lines { text, at: 0 };
    header(&mut lines)?;
    let mut indent = None;
    let mut starts = Vec::new();
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
        if spaces == indent && item {
            starts.push(start);
        }
    }
    indent?;
    Some(starts)
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
    use super::*;

    #[test]
    fn items_are_read_alone_only_without_anchors() {
        let text = "# c\ncustomers:\n  - id: A\n    name: Smith & Sons\n  # between\n  - id: B\n";
        let ranges = items(text).expect("items");
        assert_eq!(ranges.len(), 2);
        assert!(text[ranges[0].clone()].starts_with("  - id: A"));
        assert!(text[ranges[0].clone()].ends_with("# between\n"));
        assert_eq!(&text[ranges[1].clone()], "  - id: B\n");
        let anchored = [
            "name: &n X",
            "name: *n",
            "<<: *base",
            "contacts: [*c]",
            "access: {role:*r}",
            "name: \"Smith &Co\"",
        ];
        for anchored in anchored {
            let text = format!("customers:\n- id: A\n  {anchored}\n");
            assert_eq!(items(&text), None, "{anchored}");
        }
        for plain in ["name: R&D", "name: A*B", "url: https://x.example/?a=1&b=2"] {
            let text = format!("customers:\n- id: A\n  {plain}\n");
            assert!(items(&text).is_some(), "{plain}");
        }
        assert_eq!(items("customers: []\n"), None);
        assert_eq!(items("roles: []\ncustomers:\n- id: A\n"), None);
    }

    #[test]
    fn groups_change_only_around_an_edit() {
        let file = |ids: &[usize], renamed: usize| -> String {
            let items: String = ids
                .iter()
                .map(|i| {
                    let mark = if *i == renamed { " (renamed)" } else { "" };
                    format!("  - id: C{i}\n    name: N{i}{mark}\n")
                })
                .collect();
            format!("customers:\n{items}")
        };
        let ids: Vec<usize> = (0..400).collect();
        let before = groups_every(&file(&ids, usize::MAX), 4).expect("groups");
        assert!(before.len() > 50 && before.len() < 200, "{}", before.len());
        assert_eq!(before.iter().map(|g| g.items).sum::<u32>(), 400);
        for pair in before.windows(2) {
            assert_eq!(pair[0].range.end, pair[1].range.start);
        }
        let digests = |groups: &[Group]| -> std::collections::BTreeSet<[u8; 16]> {
            groups.iter().map(|g| g.digest).collect()
        };
        let old = digests(&before);
        // One item edited: one run differs. One removed: one or two.
        let edited = groups_every(&file(&ids, 200), 4).unwrap();
        assert_eq!(
            edited.iter().filter(|g| !old.contains(&g.digest)).count(),
            1
        );
        let mut fewer = ids.clone();
        fewer.remove(100);
        let removed = groups_every(&file(&fewer, usize::MAX), 4).unwrap();
        let new = removed.iter().filter(|g| !old.contains(&g.digest)).count();
        assert!((1..=2).contains(&new), "{new}");
        // Every item alone.
        assert_eq!(groups_every(&file(&ids, 0), 1).unwrap().len(), 400);
        // Stored and read back.
        let stored = decode(&encode(&before)).unwrap();
        assert_eq!(stored.len(), before.len());
        assert_eq!(stored[3], (before[3].digest, before[3].items));
        assert_eq!(decode(&[0; 21]), None);
    }

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
