//! Reading a NetSuite-style CSV into rows: encoding, separators, headers, booleans, and a
//! located problem for every bad cell.

use std::collections::{HashMap, HashSet};

use super::columns::{self, Column, ContactField};

/// A problem with one cell (or the header row), located by line and column name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line of the CSV file where the record starts.
    pub line: usize,
    /// The column's header as written in the file (empty for a whole-row problem).
    pub column: String,
    /// What is wrong; never holds a password.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl RowError {
    fn new(line: usize, column: &str, message: impl Into<String>) -> RowError {
        RowError {
            line,
            column: column.to_string(),
            message: message.into(),
            hint: None,
        }
    }

    fn hint(mut self, hint: impl Into<String>) -> RowError {
        self.hint = Some(hint.into());
        self
    }
}

/// A cell's value with where it came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cell {
    /// The trimmed value (inline up to 24 bytes, as most are: no allocation per cell).
    pub value: compact_str::CompactString,
    /// The header of its column.
    pub column: compact_str::CompactString,
}

/// A plaintext password from the file. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Plaintext(pub String);

impl std::fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Plaintext(…)")
    }
}

/// One contact-sublist entry of a row.
#[derive(Clone, Debug, Default)]
pub struct ContactRow {
    /// Line of the row it came from.
    pub line: usize,
    /// `Contact Access N : Email`.
    pub email: Option<Cell>,
    /// `… : Contact`.
    pub name: Option<String>,
    /// `… : Access`.
    pub access: Option<bool>,
    /// `… : Notify`.
    pub notify: Option<bool>,
    /// `… : Role` as written (id or display name).
    pub role: Option<Cell>,
    /// `… : Password`.
    pub password: Option<(Plaintext, String)>,
    /// `… : Confirm Password`.
    pub confirm: Option<Plaintext>,
}

/// One customer row.
#[derive(Clone, Debug, Default)]
pub struct CustomerRow {
    /// Line where the record starts.
    pub line: usize,
    /// `Internal ID`.
    pub id: String,
    /// `Company Name`.
    pub name: Option<String>,
    /// `Email`.
    pub email: Option<Cell>,
    /// `Give Access`.
    pub give_access: Option<bool>,
    /// `Send New Access Notification Email`.
    pub notify: Option<bool>,
    /// `Role` as written.
    pub role: Option<Cell>,
    /// `Assigned Website` as written.
    pub website: Option<Cell>,
    /// `Manually Assign or Change Password`.
    pub manual_password: Option<bool>,
    /// `Password` with its column header.
    pub password: Option<(Plaintext, String)>,
    /// `Confirm Password`.
    pub confirm: Option<Plaintext>,
    /// Contact entries by their sublist number.
    pub contacts: Contacts,
    /// Read from a one-row-per-contact export (its contacts came from rows of their own).
    pub per_contact: bool,
}

/// A row's contact entries by their sublist number, in order. A sorted vector: most rows
/// have one or two, and a `BTreeMap` allocated room for eleven per row (2.8 KB: 290 MiB of
/// an import of 100,000 rows).
#[derive(Clone, Debug, Default)]
pub struct Contacts(Vec<(usize, ContactRow)>);

impl Contacts {
    /// The entry numbered `n`, made by `new` if there is none.
    pub fn get_or_insert(&mut self, n: usize, new: impl FnOnce() -> ContactRow) -> &mut ContactRow {
        let at = match self.0.binary_search_by_key(&n, |(k, _)| *k) {
            Ok(at) => at,
            Err(at) => {
                self.0.insert(at, (n, new()));
                at
            }
        };
        &mut self.0[at].1
    }

    /// Sets the entry numbered `n`.
    pub fn insert(&mut self, n: usize, contact: ContactRow) {
        *self.get_or_insert(n, ContactRow::default) = contact;
    }

    /// Takes the entry numbered `n` out.
    pub fn remove(&mut self, n: usize) -> Option<ContactRow> {
        let at = self.0.binary_search_by_key(&n, |(k, _)| *k).ok()?;
        Some(self.0.remove(at).1)
    }

    /// The highest number in use.
    pub fn last_number(&self) -> Option<usize> {
        self.0.last().map(|(n, _)| *n)
    }

    /// Each entry with its number, in order.
    pub fn iter(&self) -> impl Iterator<Item = (usize, &ContactRow)> {
        self.0.iter().map(|(n, c)| (*n, c))
    }

    /// Each entry, in order.
    pub fn values(&self) -> impl Iterator<Item = &ContactRow> {
        self.0.iter().map(|(_, c)| c)
    }
}

/// Removes a UTF-8 byte-order mark.
fn strip_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// `;` when the header line has more semicolons than commas outside quotes, else `,`.
fn separator(text: &str) -> u8 {
    let (mut commas, mut semicolons, mut quoted) = (0, 0, false);
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => commas += 1,
            ';' if !quoted => semicolons += 1,
            '\n' if !quoted => break,
            _ => {}
        }
    }
    if semicolons > commas { b';' } else { b',' }
}

/// The 1-based lines of the file at byte offsets (counting `\n`, so CRLF files count right:
/// the csv crate's own line numbers run one behind on them). The rows come in order, so
/// each newline is counted once: counting from the start of the file for every row made
/// reading a 40,000-row export take 15 seconds.
struct Lines<'a> {
    text: &'a [u8],
    /// Where counting stopped, and the newlines before it.
    at: usize,
    newlines: usize,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Lines<'a> {
        Lines {
            text: text.as_bytes(),
            at: 0,
            newlines: 0,
        }
    }

    /// The line at byte `offset`.
    fn at(&mut self, offset: usize) -> usize {
        // A record of a CRLF file can be placed at the end of the line before it.
        let mut end = offset.min(self.text.len());
        while matches!(self.text.get(end), Some(b'\r' | b'\n')) {
            end += 1;
        }
        if end < self.at {
            // Never for rows in order; counted again from the start if it happens.
            (self.at, self.newlines) = (0, 0);
        }
        self.newlines += self.text[self.at..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        self.at = end;
        self.newlines + 1
    }
}

/// Unknown-column errors shown before the rest are counted in one line.
const MAX_UNKNOWN_COLUMNS: usize = 20;

/// Quotes that swallow rows: a quote still open at the end of the file, or a quoted field
/// running across lines that look like rows of their own (as many separators as the header
/// has, less one). Both name the line where the quote opened. RFC 4180 quoting: a quote
/// opens a field only at its start, and `""` inside one is a literal quote.
fn unclosed_quotes(text: &str, separator: u8, columns: usize) -> Vec<RowError> {
    let bytes = text.as_bytes();
    let (mut errors, mut line, mut at_field_start) = (Vec::new(), 1, true);
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' if at_field_start => {
                let opened = line;
                let mut rowlike = 0;
                // Separators on the current line, and whether it is the opening line (whose
                // rest belongs to the row the quote opened in).
                let (mut separators, mut opening_line) = (0, true);
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => {
                            errors.push(RowError::new(opened, "", "a quote opened on this line is never closed: it swallows every row after it").hint("close the quoted value with `\"` (a quote inside a value is written `\"\"`)"));
                            return errors;
                        }
                        Some(b'"') if bytes.get(i + 1) == Some(&b'"') => i += 2,
                        Some(b'"') => break,
                        Some(b'\n') => {
                            if !opening_line && columns > 1 && separators + 1 >= columns {
                                rowlike += 1;
                            }
                            separators = 0;
                            opening_line = false;
                            line += 1;
                            i += 1;
                        }
                        Some(c) => {
                            if *c == separator {
                                separators += 1;
                            }
                            i += 1;
                        }
                    }
                }
                if rowlike > 0 {
                    errors.push(RowError::new(opened, "", format!("a quoted value opened on this line runs across {rowlike} line(s) that look like rows: is its closing quote missing?")).hint("close the quoted value with `\"` where it ends"));
                }
                at_field_start = false;
            }
            b'\n' => {
                line += 1;
                at_field_start = true;
            }
            c if c == separator => at_field_start = true,
            b'\r' => {}
            _ => at_field_start = false,
        }
        i += 1;
    }
    errors
}

/// Reads every row. `ignore` lists headers to skip on purpose. Returns the rows and every
/// problem found; the rows are only trustworthy when there is no problem.
pub fn read(text: &str, ignore: &[String]) -> (Vec<CustomerRow>, Vec<RowError>) {
    let text = strip_bom(text);
    let mut errors = Vec::new();
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(separator(text))
        .flexible(true)
        .has_headers(true)
        .from_reader(text.as_bytes());
    let headers = match reader.headers() {
        Ok(h) => h.clone(),
        Err(e) => {
            errors.push(RowError::new(
                1,
                "",
                format!("cannot read the header row: {e}"),
            ));
            return (Vec::new(), errors);
        }
    };
    let ignored: HashSet<String> = ignore.iter().map(|h| columns::normalize(h)).collect();
    // A saved search with one row per contact (`Login Access`, `Access Role`), or NetSuite's
    // customer import with one row per customer and its contact sublist.
    let per_contact = headers.iter().any(columns::is_login_access);
    let mut layout: Vec<Option<Column>> = Vec::new();
    let mut seen: HashMap<Column, String> = HashMap::new();
    for header in headers.iter() {
        let column = header_column(header, per_contact, &ignored, &mut seen, &mut errors);
        layout.push(column);
    }
    cap_unknown_columns(&mut errors);
    errors.extend(unclosed_quotes(text, separator(text), headers.len()));
    if per_contact && !layout.contains(&Some(Column::Id)) {
        errors.push(
            RowError::new(1, "", "no customer id column in a one-row-per-contact export").hint(
                "add the customer's id as a join column, `Customer : Internal ID` (a bare `Internal ID` is the contact's own)",
            ),
        );
        return (Vec::new(), errors);
    }
    if !layout.contains(&Some(Column::Id)) {
        errors.push(
            RowError::new(1, "", "no customer id column").hint(
                "add an `Internal ID` column (or `Customer ID` / `ID`): it names the customer to change",
            ),
        );
        return (Vec::new(), errors);
    }
    let rows = read_rows(
        text,
        &mut reader,
        &headers,
        &layout,
        per_contact,
        &mut errors,
    );
    (rows, errors)
}

/// Lists at most [`MAX_UNKNOWN_COLUMNS`] unknown columns, and how many more there are.
fn cap_unknown_columns(errors: &mut Vec<RowError>) {
    let unknown = errors
        .iter()
        .filter(|e| e.message == "unknown column")
        .count();
    if unknown > MAX_UNKNOWN_COLUMNS {
        let mut shown = 0;
        errors.retain(|e| {
            let keep = e.message != "unknown column" || shown < MAX_UNKNOWN_COLUMNS;
            shown += usize::from(e.message == "unknown column");
            keep
        });
        errors.push(
            RowError::new(1, "", format!("and {} more unknown columns", unknown - MAX_UNKNOWN_COLUMNS))
                .hint("is this a NetSuite customer-access export? Skip columns on purpose with --ignore-column"),
        );
    }
}

/// Reads the data rows: one row per customer, or (`per_contact`) one per contact, joined
/// into its customer's row.
fn read_rows(
    text: &str,
    reader: &mut csv::Reader<&[u8]>,
    headers: &csv::StringRecord,
    layout: &[Option<Column>],
    per_contact: bool,
    errors: &mut Vec<RowError>,
) -> Vec<CustomerRow> {
    // As many rows as lines at most: room made once, where doubling held the old and the
    // new vector at once (both tens of MB at 100,000 rows).
    let lines_in_file = text.bytes().filter(|&b| b == b'\n').count() + 1;
    let mut rows: Vec<CustomerRow> = Vec::with_capacity(lines_in_file);
    let mut first_line: HashMap<String, usize> = HashMap::with_capacity(lines_in_file);
    // One-row-per-contact: where each customer's row is, to add its next contacts to.
    let mut at: HashMap<String, usize> = HashMap::new();
    let mut lines = Lines::new(text);
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let line = e.position().map_or(0, |p| lines.at(p.byte() as usize));
                errors.push(RowError::new(
                    line,
                    "",
                    format!("cannot read this row: {e}"),
                ));
                continue;
            }
        };
        let line = record.position().map_or(0, |p| lines.at(p.byte() as usize));
        if record.iter().all(|v| v.trim().is_empty()) {
            continue;
        }
        let row = read_row(line, &record, headers, layout, errors);
        if per_contact {
            if let Some(mut row) = row {
                row.per_contact = true;
                match at.get(&row.id) {
                    Some(&index) => join_contact(&mut rows[index], row, headers, layout, errors),
                    None => {
                        at.insert(row.id.clone(), rows.len());
                        rows.push(row);
                    }
                }
            }
            continue;
        }
        if let Some(row) = row {
            if let Some(first) = first_line.insert(row.id.clone(), line) {
                errors.push(RowError::new(
                    line,
                    headers.get(id_index(layout)).unwrap_or("Internal ID"),
                    format!("customer `{}` is already in line {first}", row.id),
                ).hint("give each customer one row; list more contacts with `Contact Access 2 : …`"));
                continue;
            }
            rows.push(row);
        }
    }
    rows
}

/// Adds the contact of a one-row-per-contact `row` to its customer's first row: as the next
/// entry of its contact sublist. The customer's name, if given again, must agree, and a
/// contact listed twice is an error at its second line.
fn join_contact(
    customer: &mut CustomerRow,
    mut row: CustomerRow,
    headers: &csv::StringRecord,
    layout: &[Option<Column>],
    errors: &mut Vec<RowError>,
) {
    let header = |column: Column| {
        layout
            .iter()
            .position(|c| *c == Some(column))
            .and_then(|i| headers.get(i))
            .unwrap_or("")
            .trim()
            .to_string()
    };
    match (&customer.name, row.name.take()) {
        (Some(first), Some(again)) if *first != again => errors.push(
            RowError::new(
                row.line,
                &header(Column::Name),
                format!(
                    "customer `{}` is named `{first}` in line {}",
                    customer.id, customer.line
                ),
            )
            .hint("give the customer the same name on each of its rows"),
        ),
        (None, Some(again)) => customer.name = Some(again),
        _ => {}
    }
    let Some(contact) = row.contacts.remove(1) else {
        return;
    };
    if let Some(email) = &contact.email {
        let key = email.value.to_lowercase();
        if let Some(first) = customer.contacts.values().find(|c| {
            c.email
                .as_ref()
                .is_some_and(|e| e.value.to_lowercase() == key)
        }) {
            errors.push(
                RowError::new(
                    row.line,
                    &email.column,
                    format!(
                        "contact `{}` of customer `{}` is already in line {}",
                        email.value, customer.id, first.line
                    ),
                )
                .hint("give each contact one row"),
            );
            return;
        }
    }
    let next = customer.contacts.last_number().map_or(1, |n| n + 1);
    customer.contacts.insert(next, contact);
}

fn id_index(layout: &[Option<Column>]) -> usize {
    layout
        .iter()
        .position(|c| *c == Some(Column::Id))
        .unwrap_or(0)
}

fn header_column(
    header: &str,
    per_contact: bool,
    ignored: &HashSet<String>,
    seen: &mut HashMap<Column, String>,
    errors: &mut Vec<RowError>,
) -> Option<Column> {
    if header.trim().is_empty() || ignored.contains(&columns::normalize(header)) {
        return None;
    }
    if per_contact && columns::is_contact_own_id(header) {
        return None;
    }
    let parsed = if per_contact {
        columns::parse_per_contact(header)
    } else {
        columns::parse(header)
    };
    let Some(column) = parsed else {
        let mut error = RowError::new(1, header.trim(), "unknown column");
        error.hint = Some(match columns::suggestion(header) {
            Some(best) => format!(
                "did you mean \"{best}\"? (or skip it with --ignore-column \"{}\")",
                header.trim()
            ),
            None => format!("skip it with --ignore-column \"{}\"", header.trim()),
        });
        errors.push(error);
        return None;
    };
    if let Some(first) = seen.insert(column, header.trim().to_string()) {
        errors.push(RowError::new(
            1,
            header.trim(),
            format!("the same column as \"{first}\""),
        ));
        return None;
    }
    Some(column)
}

fn read_row(
    line: usize,
    record: &csv::StringRecord,
    headers: &csv::StringRecord,
    layout: &[Option<Column>],
    errors: &mut Vec<RowError>,
) -> Option<CustomerRow> {
    let mut row = CustomerRow {
        line,
        ..CustomerRow::default()
    };
    for (index, raw) in record.iter().enumerate() {
        let header = headers.get(index).unwrap_or("").trim();
        let Some(Some(column)) = layout.get(index) else {
            // Cells of ignored columns are skipped; a value under no header is a mistake.
            if header.is_empty() && !raw.trim().is_empty() {
                errors.push(
                    RowError::new(
                        line,
                        &format!("#{}", index + 1),
                        "a value in a column without a header",
                    )
                    .hint("name the column in the header row, or remove the value"),
                );
            }
            continue;
        };
        let value = if column.is_secret() { raw } else { raw.trim() };
        if value.is_empty() {
            continue;
        }
        set(&mut row, *column, value, header, errors);
    }
    let confirm_alone = |password: bool, confirm: bool, errors: &mut Vec<RowError>, what: &str| {
        if confirm && !password {
            errors.push(
                RowError::new(line, what, "a confirmation without a password")
                    .hint("fill in the password too, or leave both empty"),
            );
        }
    };
    confirm_alone(
        row.password.is_some(),
        row.confirm.is_some(),
        errors,
        "Confirm Password",
    );
    for (n, c) in row.contacts.iter() {
        let column = format!("Contact Access {n} : Confirm Password");
        confirm_alone(c.password.is_some(), c.confirm.is_some(), errors, &column);
    }
    if row.id.is_empty() {
        let header = headers
            .get(id_index(layout))
            .unwrap_or("Internal ID")
            .trim();
        errors.push(RowError::new(line, header, "the customer id is empty"));
        return None;
    }
    // A row with a bad cell is still checked further, so every problem shows at once.
    Some(row)
}

fn flag(value: &str, line: usize, header: &str, errors: &mut Vec<RowError>) -> Option<bool> {
    match columns::boolean(value) {
        Ok(b) => b,
        Err(columns::NotABoolean) => {
            errors.push(
                RowError::new(line, header, format!("`{value}` is not a yes/no value"))
                    .hint("use Yes/No, True/False, T/F or 1/0"),
            );
            None
        }
    }
}

fn set(
    row: &mut CustomerRow,
    column: Column,
    value: &str,
    header: &str,
    errors: &mut Vec<RowError>,
) {
    let line = row.line;
    let cell = || Cell {
        value: value.into(),
        column: header.into(),
    };
    match column {
        Column::Id => row.id = value.to_string(),
        Column::Name => row.name = Some(value.to_string()),
        Column::Email => row.email = Some(cell()),
        Column::GiveAccess => row.give_access = flag(value, line, header, errors),
        Column::Notify => row.notify = flag(value, line, header, errors),
        Column::Role => row.role = Some(cell()),
        Column::Website => row.website = Some(cell()),
        Column::ManualPassword => row.manual_password = flag(value, line, header, errors),
        Column::Password => row.password = Some((Plaintext(value.to_string()), header.to_string())),
        Column::ConfirmPassword => row.confirm = Some(Plaintext(value.to_string())),
        Column::Contact(n, field) => {
            let contact = row.contacts.get_or_insert(n, || ContactRow {
                line,
                ..ContactRow::default()
            });
            match field {
                ContactField::Name => contact.name = Some(value.to_string()),
                ContactField::Email => contact.email = Some(cell()),
                ContactField::Access => contact.access = flag(value, line, header, errors),
                ContactField::Notify => contact.notify = flag(value, line, header, errors),
                ContactField::Role => contact.role = Some(cell()),
                ContactField::Password => {
                    contact.password = Some((Plaintext(value.to_string()), header.to_string()))
                }
                ContactField::ConfirmPassword => {
                    contact.confirm = Some(Plaintext(value.to_string()))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counting once, in order, gives each offset the line a count from the start gives it,
    /// on LF and CRLF files with a quoted field across lines; an offset going back is
    /// counted again from the start.
    #[test]
    fn lines_counted_once_match_a_count_from_the_start() {
        let from_start = |text: &str, offset: usize| {
            let mut end = offset.min(text.len());
            while matches!(text.as_bytes().get(end), Some(b'\r' | b'\n')) {
                end += 1;
            }
            text.as_bytes()[..end]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1
        };
        for text in [
            "ID,Name\nC1,\"two\nlines\"\nC2,x\n\nC3,y\n",
            "ID,Name\r\nC1,\"two\r\nlines\"\r\nC2,x\r\n\r\nC3,y\r\n",
        ] {
            let mut lines = Lines::new(text);
            for offset in 0..=text.len() + 2 {
                assert_eq!(
                    lines.at(offset),
                    from_start(text, offset),
                    "{text:?} at {offset}"
                );
            }
            assert_eq!(lines.at(0), 1, "back to the start");
            assert_eq!(lines.at(text.len()), from_start(text, text.len()));
        }
    }

    #[test]
    fn detects_semicolons_and_strips_the_bom() {
        let text = "\u{feff}Internal ID;Company Name;Email\r\nC1;\"Acme; Ltd\";a@x.example\r\n";
        let (rows, errors) = read(text, &[]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(rows[0].id, "C1");
        assert_eq!(rows[0].name.as_deref(), Some("Acme; Ltd"));
    }

    #[test]
    fn quoted_commas_quotes_and_newlines() {
        let text = "ID,Name\nC1,\"Acme, \"\"The\"\" Ltd\nSecond line\"\nC2,Beta\n";
        let (rows, errors) = read(text, &[]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            rows[0].name.as_deref(),
            Some("Acme, \"The\" Ltd\nSecond line")
        );
        assert_eq!(rows[1].line, 4, "lines count the embedded newline");
    }

    #[test]
    fn crlf_lines_are_counted_as_the_file_has_them() {
        let text = "ID,Give Access\r\nC1,yes\r\nC2,maybe\r\n";
        let (_, errors) = read(text, &[]);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].line, 3);
    }

    #[test]
    fn an_unclosed_quote_is_named_where_it_opened() {
        let text =
            "ID,Name,Email\nC1,\"Acme,a@x.example\nC2,Beta,b@x.example\nC3,Gamma,c@x.example\n";
        let (_, errors) = read(text, &[]);
        assert!(
            errors
                .iter()
                .any(|e| e.line == 2 && e.message.contains("never closed")),
            "{errors:?}"
        );
        // Closed again later: the rows in between are named as swallowed.
        let text =
            "ID,Name,Email\nC1,\"Acme,a@x.example\nC2,Beta,b@x.example\nC3,\"Gamma\",c@x.example\n";
        let (_, errors) = read(text, &[]);
        assert!(
            errors
                .iter()
                .any(|e| e.line == 2 && e.message.contains("look like rows")),
            "{errors:?}"
        );
        // A value with a line break of its own is fine.
        let (_, errors) = read("ID,Name\nC1,\"Acme\nLtd\"\nC2,Beta\n", &[]);
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn unknown_columns_are_capped_and_confirmations_need_a_password() {
        let mut header = String::from("ID");
        for i in 0..10_000 {
            header.push_str(&format!(",X{i}"));
        }
        let (_, errors) = read(&format!("{header}\nC1\n"), &[]);
        assert_eq!(errors.len(), MAX_UNKNOWN_COLUMNS + 1, "{}", errors.len());
        assert!(
            errors
                .last()
                .unwrap()
                .message
                .contains("9980 more unknown columns")
        );
        let (_, errors) = read("ID,Confirm Password\nC1,secret-value\n", &[]);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].message, "a confirmation without a password");
        let (_, errors) = read("ID,Contact Access 0 : Email\nC1,x\n", &[]);
        assert!(
            errors[0]
                .hint
                .as_deref()
                .is_none_or(|h| !h.contains("did you mean \"Contact Access 0")),
            "{errors:?}"
        );
    }

    #[test]
    fn excel_trailing_empty_columns_are_ignored() {
        let (rows, errors) = read("ID,Name,,\nC1,Acme,,\n", &[]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(rows.len(), 1);
    }

    #[test]
    fn every_bad_cell_is_reported() {
        let text = "ID,Give Access,Emial\nC1,maybe,x\n,yes,y\n";
        let (_, errors) = read(text, &[]);
        let messages: Vec<String> = errors
            .iter()
            .map(|e| format!("{}:{}:{}", e.line, e.column, e.message))
            .collect();
        assert_eq!(
            messages,
            [
                "1:Emial:unknown column",
                "2:Give Access:`maybe` is not a yes/no value",
                "3:ID:the customer id is empty"
            ]
        );
        let (_, errors) = read(text, &["emial".to_string()]);
        assert_eq!(errors.len(), 2, "an ignored column is skipped: {errors:?}");
    }
}
