//! Characters that change how text reads without being seen (bidi controls, zero-width and
//! other format characters), and escaping them so plans show what they really do.

use std::borrow::Cow;

/// Whether `c` is a control or an invisible format character: bidi embeddings, overrides
/// and isolates (the "Trojan Source" characters), zero-width spaces and joiners, the
/// soft hyphen, word joiners, the byte-order mark, interlinear annotations and tag
/// characters (Unicode general category Cc and Cf).
pub fn is_invisible(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_control();
    }
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{0600}'..='\u{0605}'
                | '\u{061C}'
                | '\u{06DD}'
                | '\u{070F}'
                | '\u{08E2}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{110BD}'
                | '\u{110CD}'
                | '\u{13430}'..='\u{1343F}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0001}'
                | '\u{E0020}'..='\u{E007F}'
        )
}

/// `text` with every invisible character written as `\u{…}`, so a reviewer sees it.
pub fn escape_invisible(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_invisible) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| {
                if is_invisible(c) {
                    format!("\\u{{{:x}}}", c as u32)
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trojan_source_characters_are_escaped() {
        assert_eq!(escape_invisible("Acme\u{202E}dtL"), "Acme\\u{202e}dtL");
        assert_eq!(escape_invisible("a\u{200B}b"), "a\\u{200b}b");
        assert_eq!(escape_invisible("Jürgen Müller"), "Jürgen Müller");
        assert_eq!(escape_invisible("tab\there"), "tab\\u{9}here");
    }
}
