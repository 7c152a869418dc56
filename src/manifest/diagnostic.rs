//! Located errors and warnings about manifests, rendered as `file:line:col`, the source line
//! and carets under the problem.

use std::fmt::Write as _;
use std::path::PathBuf;

use anstyle::{AnsiColor, Style};

use super::path::{Position, YamlPath, locate};

/// How bad a diagnostic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Stops validate, plan and apply.
    Error,
    /// Printed; does not stop anything.
    Warning,
}

/// Where in the manifest set something was declared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    /// Index into [`Sources`].
    pub file: usize,
    /// Document number within the file (0-based).
    pub doc: usize,
    /// Path from the document root.
    pub path: YamlPath,
    /// Point at the key rather than its value.
    pub at_key: bool,
}

impl Site {
    /// The same site, one key deeper, pointing at that key's value.
    pub fn key(&self, key: impl Into<std::borrow::Cow<'static, str>>) -> Site {
        Site {
            file: self.file,
            doc: self.doc,
            path: self.path.key(key),
            at_key: false,
        }
    }

    /// The same site, one sequence item deeper.
    pub fn index(&self, index: usize) -> Site {
        Site {
            file: self.file,
            doc: self.doc,
            path: self.path.index(index),
            at_key: false,
        }
    }

    /// The same site, pointing at the key itself.
    pub fn at_key(mut self) -> Site {
        self.at_key = true;
        self
    }
}

/// One problem found in the manifests (or while reading them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong, in one sentence.
    pub message: String,
    /// Where; `None` for problems without a place (an unreadable folder names its path in
    /// the message).
    pub site: Option<Site>,
    /// A file that could not be read or parsed, when there is no finer site.
    pub file: Option<usize>,
    /// A position known up front (YAML syntax errors), else computed from `site`.
    pub position: Option<Position>,
    /// "did you mean ..." and similar advice.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// An error at a site.
    pub fn error(site: Site, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            site: Some(site),
            file: None,
            position: None,
            hint: None,
        }
    }

    /// A warning at a site, or about the whole set.
    pub fn warning(site: Option<Site>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            message: message.into(),
            site,
            file: None,
            position: None,
            hint: None,
        }
    }

    /// An error about a whole file or folder.
    pub fn file_error(file: Option<usize>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            site: None,
            file,
            position: None,
            hint: None,
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }

    /// Adds a "did you mean" hint when one of `candidates` is close to `given`.
    pub fn suggest<'a>(
        self,
        given: &str,
        candidates: impl IntoIterator<Item = &'a str>,
    ) -> Diagnostic {
        match did_you_mean(given, candidates) {
            Some(best) => self.with_hint(format!("did you mean `{best}`?")),
            None => self,
        }
    }

    /// Whether this stops the run.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// The closest candidate to `given`, when it is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    given: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let given = given.to_lowercase();
    candidates
        .into_iter()
        .map(|candidate| {
            (
                strsim::jaro_winkler(&given, &candidate.to_lowercase()),
                candidate,
            )
        })
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

/// One file of a manifest set: its path, the digest of its text as read, and the text while
/// it is needed.
///
/// A big account's files are let go once parsed ([`Source::release_text`]; 33 MB at 300,000
/// logins, all of it resident at a plan's peak). [`Source::text`] reads the file again when a
/// diagnostic quotes it or `import-csv` edits it, and gives the empty text when the file no
/// longer has the digest it was read with (changed or removed meanwhile): a diagnostic is
/// then shown without its line, never with a wrong one.
#[derive(Clone, Debug)]
pub struct Source {
    /// Path as given or found.
    pub path: PathBuf,
    text: std::sync::OnceLock<String>,
    /// The git blob id of the text as first read, and its size.
    digest: std::sync::OnceLock<(crate::gitindex::BlobId, u64)>,
    /// Bytes, as read or as the file system said before it was read (`None`: not asked;
    /// the read asks the opened file).
    size: Option<u64>,
    /// The file's folder, opened, for a file not read yet: it is opened by its name there.
    folder: Option<std::sync::Arc<rustix::fd::OwnedFd>>,
}

/// Why a file left [`Source::unread`] was not read for its parse.
#[derive(Debug)]
pub enum Unread {
    /// It could not be opened or read.
    Io(std::io::Error),
    /// It is not UTF-8 text.
    NotUtf8,
    /// It is larger than the limit (its size).
    TooLarge(u64),
}

impl Source {
    /// A file as read.
    pub fn new(path: PathBuf, text: String) -> Source {
        Source {
            path,
            size: Some(text.len() as u64),
            text: std::sync::OnceLock::from(text),
            digest: std::sync::OnceLock::new(),
            folder: None,
        }
    }

    /// A file of `size` bytes (`None`: not asked yet) not read yet: its parse reads it
    /// ([`Source::read_for_parse`]) and lets the text go as soon as it is parsed, so a big
    /// account's files are not all held at once (79 MB at 300,000 wide logins, at the peak
    /// of the parse). With its `folder` (opened), the file is opened by its name there.
    pub fn unread(
        path: PathBuf,
        size: Option<u64>,
        folder: Option<std::sync::Arc<rustix::fd::OwnedFd>>,
    ) -> Source {
        Source {
            path,
            text: std::sync::OnceLock::new(),
            digest: std::sync::OnceLock::new(),
            size,
            folder,
        }
    }

    /// Bytes: of the text held, else as the file system said before it was read (0 when it
    /// was not asked).
    pub fn size(&self) -> u64 {
        self.text
            .get()
            .map_or(self.size.unwrap_or(0), |text| text.len() as u64)
    }

    /// Whether the text is held (read, or given).
    pub fn is_held(&self) -> bool {
        self.text.get().is_some()
    }

    /// Reads a file left [`Source::unread`] for its parse: the digest is kept, the text
    /// handed over. A file of `hold_from` bytes or more is held instead (`None`), to be
    /// parsed in pieces. Too large, unreadable or not UTF-8, it reads as empty from then on.
    ///
    /// # Errors
    /// What kept it from being read.
    pub fn read_for_parse(&self, limit: u64, hold_from: u64) -> Result<Option<String>, Unread> {
        match self.read_within(limit) {
            Ok(text) if text.len() as u64 >= hold_from => {
                let _ = self.text.set(text);
                Ok(None)
            }
            Ok(text) => {
                let _ = self.digest.set(digest_of(&text));
                Ok(Some(text))
            }
            Err(error) => {
                let _ = self.digest.set(digest_of(""));
                let _ = self.text.set(String::new());
                Err(error)
            }
        }
    }

    /// The file's text, when it is at most `limit` bytes. A file whose size the listing did
    /// not ask is read up to one byte past the limit instead of asked its size: for 100,000
    /// one-customer files, a `statx` each was a fifth of the system calls of a `validate`.
    fn read_within(&self, limit: u64) -> Result<String, Unread> {
        use std::io::Read as _;
        let file =
            crate::folders::open_in(self.folder.as_deref(), &self.path).map_err(Unread::Io)?;
        if let Some(size) = self.size
            && size > limit
        {
            return Err(Unread::TooLarge(size));
        }
        // Sized by the size known (or a small file's room): `std::fs::read`, and
        // `read_to_end` on a bare `File`, ask the file system for its size again; through
        // `take` the read is a plain one.
        let room = self.size.map_or(UNSIZED_ROOM, |size| {
            usize::try_from(size).unwrap_or(0).saturating_add(1)
        });
        let mut bytes = Vec::with_capacity(room);
        let mut file = file.take(limit.saturating_add(1));
        file.read_to_end(&mut bytes).map_err(Unread::Io)?;
        if bytes.len() as u64 > limit {
            // Too large: its size, for the message, asked now.
            let size = file.into_inner().metadata().map_err(Unread::Io)?.len();
            return Err(Unread::TooLarge(size.max(bytes.len() as u64)));
        }
        String::from_utf8(bytes).map_err(|_| Unread::NotUtf8)
    }

    /// The text as read (again, if it was released; empty if the file changed since).
    pub fn text(&self) -> &str {
        self.text.get_or_init(|| {
            std::fs::read_to_string(&self.path)
                .ok()
                .filter(|text| digest_of(text).0 == *self.digest())
                .unwrap_or_default()
        })
    }

    /// The git blob id of the text as first read (computed on first use: the parse threads
    /// take it, each beside the file it parses).
    pub fn digest(&self) -> &crate::gitindex::BlobId {
        &self.digest.get_or_init(|| digest_of(self.text())).0
    }

    /// The size in bytes of the text [`Source::digest`] is of.
    pub fn digested_size(&self) -> u64 {
        self.digest.get_or_init(|| digest_of(self.text())).1
    }

    /// Lets go of the text; [`Source::text`] reads the file again when it is needed.
    pub fn release_text(&mut self) {
        self.digest();
        self.text = std::sync::OnceLock::new();
    }
}

/// The room a file whose size is not known is first read into: a one-customer file fits.
const UNSIZED_ROOM: usize = 4096;

fn digest_of(text: &str) -> (crate::gitindex::BlobId, u64) {
    (crate::gitindex::blob_id(text.as_bytes()), text.len() as u64)
}

/// How many errors, and how many warnings, are shown with their source lines. Nobody reads
/// more, and each costs a re-read of its document to find the line: an account where every
/// one of 200,000 logins has the same mistake would otherwise take hours to report.
pub const SHOWN_PER_SEVERITY: usize = 100;

/// Renders diagnostics, errors first, in a stable order: the first
/// [`SHOWN_PER_SEVERITY`] of each severity, then how many more there are. `color` adds
/// ANSI styles.
pub fn render(sources: &[Source], diagnostics: &[Diagnostic], color: bool) -> String {
    let mut sorted: Vec<&Diagnostic> = diagnostics.iter().collect();
    sorted.sort_by_key(|d| d.severity);
    let mut out = String::new();
    for severity in [Severity::Error, Severity::Warning] {
        let of: Vec<&&Diagnostic> = sorted.iter().filter(|d| d.severity == severity).collect();
        for diagnostic in of.iter().take(SHOWN_PER_SEVERITY) {
            render_one(&mut out, sources, diagnostic, color);
        }
        let more = of.len().saturating_sub(SHOWN_PER_SEVERITY);
        if more > 0 {
            let what = match severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            let _ = writeln!(
                out,
                "… and {more} more {what}{} not shown (the first {SHOWN_PER_SEVERITY} are above)",
                if more == 1 { "" } else { "s" }
            );
        }
    }
    out
}

/// `validate --format json` (`schemas/validate.schema.json`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "portico validate report")]
pub struct Report {
    /// Whether the manifests have no error.
    pub valid: bool,
    /// Errors.
    pub errors: usize,
    /// Warnings.
    pub warnings: usize,
    /// Every diagnostic, errors first.
    pub diagnostics: Vec<JsonDiagnostic>,
    /// What the manifests declare, when valid.
    pub counts: Option<Counts>,
}

/// Object counts of a valid manifest set.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Counts {
    pub files: usize,
    pub roles: usize,
    pub websites: usize,
    pub customers: usize,
    pub contacts: usize,
}

/// One diagnostic, located.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JsonDiagnostic {
    /// `error` or `warning`.
    pub severity: String,
    /// What is wrong.
    pub message: String,
    /// The file, as found (relative to the working folder when given so).
    pub file: Option<String>,
    /// 1-based line.
    pub line: Option<usize>,
    /// 1-based column.
    pub column: Option<usize>,
    /// Path inside the YAML document, for example `customers[3].contacts[0].email`.
    pub path: Option<String>,
    /// Advice ("did you mean …").
    pub hint: Option<String>,
}

/// The diagnostics as JSON records, errors first.
pub fn to_json(sources: &[Source], diagnostics: &[Diagnostic]) -> Vec<JsonDiagnostic> {
    let mut sorted: Vec<&Diagnostic> = diagnostics.iter().collect();
    sorted.sort_by_key(|d| d.severity);
    sorted
        .into_iter()
        .map(|d| {
            let source = d
                .site
                .as_ref()
                .map(|site| site.file)
                .or(d.file)
                .and_then(|index| sources.get(index));
            let position = source.and_then(|source| {
                d.position.or_else(|| {
                    d.site
                        .as_ref()
                        .and_then(|site| locate(source.text(), site.doc, &site.path, site.at_key))
                })
            });
            JsonDiagnostic {
                severity: match d.severity {
                    Severity::Error => "error",
                    Severity::Warning => "warning",
                }
                .into(),
                message: d.message.clone(),
                file: source.map(|s| s.path.display().to_string()),
                line: position.map(|p| p.line),
                column: position.map(|p| p.column),
                path: d
                    .site
                    .as_ref()
                    .map(|site| site.path.to_string())
                    .filter(|p| !p.is_empty()),
                hint: d.hint.clone(),
            }
        })
        .collect()
}

/// The diagnostics as GitHub Actions workflow commands (`::error file=…,line=…,col=…::…`),
/// so a pull request shows each one on the offending line.
pub fn render_github(sources: &[Source], diagnostics: &[Diagnostic]) -> String {
    let mut out = String::new();
    let mut shown = [0usize; 2];
    for d in diagnostics {
        // GitHub shows a handful of annotations per step: the first of each severity.
        let count = &mut shown[usize::from(d.severity != Severity::Error)];
        *count += 1;
        if *count > SHOWN_PER_SEVERITY {
            continue;
        }
        let level = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let file = d.site.as_ref().map(|site| site.file).or(d.file);
        let mut props = Vec::new();
        if let Some(source) = file.and_then(|index| sources.get(index)) {
            props.push(format!(
                "file={}",
                property(&source.path.display().to_string())
            ));
            let position = d.position.or_else(|| {
                d.site
                    .as_ref()
                    .and_then(|site| locate(source.text(), site.doc, &site.path, site.at_key))
            });
            if let Some(at) = position {
                props.push(format!("line={},col={}", at.line, at.column));
            }
        }
        let mut message = d.message.clone();
        if let Some(hint) = &d.hint {
            message.push_str(&format!(" (help: {hint})"));
        }
        let _ = writeln!(
            out,
            "::{level} {}title=portico::{}",
            props.iter().map(|p| format!("{p},")).collect::<String>(),
            data(&message)
        );
    }
    out
}

/// Escapes a workflow-command message (GitHub's rules: `%`, CR, LF).
fn data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a workflow-command property (also `:` and `,`).
fn property(text: &str) -> String {
    data(text).replace(':', "%3A").replace(',', "%2C")
}

fn paint(color: bool, style: Style, text: &str) -> String {
    if color {
        format!("{}{text}{}", style.render(), style.render_reset())
    } else {
        text.to_string()
    }
}

fn render_one(out: &mut String, sources: &[Source], d: &Diagnostic, color: bool) {
    let bold = Style::new().bold();
    let (label, style) = match d.severity {
        Severity::Error => ("error", AnsiColor::Red.on_default().bold()),
        Severity::Warning => ("warning", AnsiColor::Yellow.on_default().bold()),
    };
    let blue = AnsiColor::Blue.on_default().bold();
    let _ = writeln!(
        out,
        "{}: {}",
        paint(color, style, label),
        paint(color, bold, &shorten(&d.message))
    );
    let file = d.site.as_ref().map(|site| site.file).or(d.file);
    let Some(source) = file.and_then(|index| sources.get(index)) else {
        if let Some(hint) = &d.hint {
            let _ = writeln!(out, "  = help: {hint}");
        }
        return;
    };
    let position = d.position.or_else(|| {
        d.site
            .as_ref()
            .and_then(|site| locate(source.text(), site.doc, &site.path, site.at_key))
    });
    let path = d
        .site
        .as_ref()
        .map(|site| format!(" ({})", site.path))
        .unwrap_or_default();
    match position {
        Some(at) => {
            let _ = writeln!(
                out,
                "  {} {}:{}:{}{path}",
                paint(color, blue, "-->"),
                source.path.display(),
                at.line,
                at.column
            );
            quote_line(out, source.text(), at, color);
        }
        None => {
            let _ = writeln!(
                out,
                "  {} {}{path}",
                paint(color, blue, "-->"),
                source.path.display()
            );
        }
    }
    if let Some(hint) = &d.hint {
        let _ = writeln!(out, "  = help: {hint}");
    }
}

/// A message cut to a readable length (values quoted in it can be huge).
fn shorten(message: &str) -> String {
    const MAX: usize = 400;
    if message.chars().count() <= MAX {
        return message.to_string();
    }
    let cut: String = message.chars().take(MAX).collect();
    format!("{cut}… ({} more characters)", message.chars().count() - MAX)
}

/// Longest part of a source line quoted under a diagnostic, and most carets.
const QUOTE_WIDTH: usize = 120;

fn quote_line(out: &mut String, text: &str, at: Position, color: bool) {
    let Some(full) = text.lines().nth(at.line.saturating_sub(1)) else {
        return;
    };
    let number = at.line.to_string();
    let gutter = " ".repeat(number.len());
    let blue = AnsiColor::Blue.on_default().bold();
    let red = AnsiColor::Red.on_default().bold();
    let mut start = at.column.saturating_sub(1);
    // A very long line is shown as a window around the problem, so a 10,000-character value
    // gives one readable line, not a screenful.
    let chars: Vec<char> = full.chars().collect();
    let line: String = if chars.len() > QUOTE_WIDTH {
        let from = start.saturating_sub(20);
        let to = (from + QUOTE_WIDTH).min(chars.len());
        let mut shown: String = chars[from..to].iter().collect();
        if to < chars.len() {
            shown.push('…');
        }
        if from > 0 {
            shown.insert(0, '…');
            start = start - from + 1;
        }
        shown
    } else {
        full.to_string()
    };
    let line = line.as_str();
    let width = token_width(line.chars().skip(start)).min(QUOTE_WIDTH - 20);
    let _ = writeln!(out, "  {gutter} {}", paint(color, blue, "|"));
    let _ = writeln!(
        out,
        "  {} {} {line}",
        paint(color, blue, &number),
        paint(color, blue, "|")
    );
    let carets = format!("{}{}", " ".repeat(start), "^".repeat(width));
    let _ = writeln!(
        out,
        "  {gutter} {} {}",
        paint(color, blue, "|"),
        paint(color, red, &carets)
    );
}

/// Width of the token starting at the caret: a quoted scalar, or up to `:`, `,`, a bracket
/// or a comment.
fn token_width(mut chars: impl Iterator<Item = char>) -> usize {
    let Some(first) = chars.next() else { return 1 };
    if first == '"' || first == '\'' {
        return 2 + chars.take_while(|c| *c != first).count();
    }
    let rest = chars
        .take_while(|c| !matches!(c, ',' | ']' | '}' | '#'))
        .collect::<String>();
    let rest = rest
        .split(": ")
        .next()
        .unwrap_or("")
        .trim_end()
        .trim_end_matches(':');
    1 + rest.chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_released_text_is_read_again_and_only_if_the_file_is_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.yaml");
        std::fs::write(&path, "customers: []\n").unwrap();
        let mut source = Source::new(path.clone(), "customers: []\n".into());
        let digest = *source.digest();
        source.release_text();
        assert_eq!(source.text(), "customers: []\n");
        assert_eq!(*source.digest(), digest);

        let mut changed = Source::new(path.clone(), "customers: []\n".into());
        changed.release_text();
        std::fs::write(&path, "customers: [{}]\n").unwrap();
        assert_eq!(changed.text(), "", "a changed file is never quoted");

        let mut gone = Source::new(dir.path().join("gone.yaml"), "x: 1\n".into());
        gone.release_text();
        assert_eq!(gone.text(), "");
    }

    #[test]
    fn a_file_read_without_its_size_is_held_to_the_limit_and_reported_with_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.yaml");
        // Larger than the first room a file of unknown size is read into.
        let text = format!("customers: []\n# {}\n", "x".repeat(3 * UNSIZED_ROOM));
        std::fs::write(&path, &text).unwrap();
        let len = text.len() as u64;
        let read = |limit| Source::unread(path.clone(), None, None).read_for_parse(limit, u64::MAX);
        assert_eq!(read(len).unwrap().as_deref(), Some(text.as_str()));
        match read(len - 1) {
            Err(Unread::TooLarge(size)) => assert_eq!(size, len),
            other => panic!("one byte over the limit: {other:?}"),
        }
        // A size the listing asked is trusted before the file is read.
        let sized = Source::unread(path.clone(), Some(len), None);
        assert!(
            matches!(sized.read_for_parse(len - 1, u64::MAX), Err(Unread::TooLarge(s)) if s == len)
        );
        // Not UTF-8, without its size asked.
        std::fs::write(&path, b"customers: [\xff]\n").unwrap();
        assert!(matches!(read(1024), Err(Unread::NotUtf8)));
    }

    #[test]
    fn suggests_close_names_only() {
        assert_eq!(
            did_you_mean("rol", ["role", "website", "notify"]),
            Some("role")
        );
        assert_eq!(
            did_you_mean("acme-centre", ["acme-center", "other"]),
            Some("acme-center")
        );
        assert_eq!(did_you_mean("zzz", ["role", "website"]), None);
    }

    #[test]
    fn carets_cover_the_token() {
        assert_eq!(token_width("acme-centre  # comment".chars()), 11);
        assert_eq!(token_width("rol: x".chars()), 3);
        assert_eq!(token_width("\"a b\" x".chars()), 5);
    }
}
