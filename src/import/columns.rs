//! NetSuite's column names for customer access imports, matched case-insensitively.

/// A field of the customer or of one contact-sublist entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Column {
    /// `Internal ID`, `Customer ID`, `ID`.
    Id,
    /// `Company Name`, `Name`.
    Name,
    /// `Email`.
    Email,
    /// `Give Access`.
    GiveAccess,
    /// `Send New Access Notification Email`.
    Notify,
    /// `Role`.
    Role,
    /// `Assigned Website`.
    Website,
    /// `Manually Assign or Change Password`.
    ManualPassword,
    /// `Password`.
    Password,
    /// `Confirm Password`.
    ConfirmPassword,
    /// `Contact Access N : <field>`.
    Contact(usize, ContactField),
}

/// A field of the contact sublist (`Contact Access N : …`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContactField {
    /// `Contact` (the contact's name).
    Name,
    /// `Email`.
    Email,
    /// `Access`.
    Access,
    /// `Notify`.
    Notify,
    /// `Role`.
    Role,
    /// `Password`.
    Password,
    /// `Confirm Password`.
    ConfirmPassword,
}

impl Column {
    /// Whether the column holds a plaintext password (its values are never shown).
    pub fn is_secret(self) -> bool {
        matches!(
            self,
            Column::Password
                | Column::ConfirmPassword
                | Column::Contact(_, ContactField::Password | ContactField::ConfirmPassword)
        )
    }
}

/// Column names as NetSuite writes them, for hints and documentation.
pub const KNOWN: &[&str] = &[
    "Internal ID",
    "Customer ID",
    "ID",
    "Company Name",
    "Name",
    "Email",
    "Give Access",
    "Send New Access Notification Email",
    "Role",
    "Assigned Website",
    "Manually Assign or Change Password",
    "Password",
    "Confirm Password",
    "Contact Access 1 : Contact",
    "Contact Access 1 : Email",
    "Contact Access 1 : Access",
    "Contact Access 1 : Notify",
    "Contact Access 1 : Role",
    "Contact Access 1 : Password",
    "Contact Access 1 : Confirm Password",
];

/// Lower case, surrounding spaces gone, inner runs of spaces as one, ` : ` as `:`.
pub fn normalize(header: &str) -> String {
    let words: Vec<&str> = header.split_whitespace().collect();
    words
        .join(" ")
        .to_lowercase()
        .replace(" :", ":")
        .replace(": ", ":")
}

/// A header reduced to what names it: lower-case letters and digits (and `:` between a
/// sublist and its field), so `E Mail`, `AssignedWebsite`, `Assigned Web Site` and
/// `assigned_website` all read alike.
fn compact(header: &str) -> String {
    header
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ':')
        .collect()
}

/// The column a header names, if portico knows it: NetSuite's field labels (spaces, case
/// and punctuation ignored) or its internal ids (`internalid`, `entityid`, `giveaccess`,
/// `sendemail`, `accessrole`, `password2`).
pub fn parse(header: &str) -> Option<Column> {
    let name = compact(header);
    let column = match name.as_str() {
        "internalid" | "customerid" | "id" | "entityid" => Column::Id,
        "companyname" | "name" => Column::Name,
        "email" | "emailaddress" => Column::Email,
        "giveaccess" => Column::GiveAccess,
        "sendnewaccessnotificationemail" | "sendemail" => Column::Notify,
        "role" | "accessrole" => Column::Role,
        "assignedwebsite" => Column::Website,
        "manuallyassignorchangepassword" => Column::ManualPassword,
        "password" => Column::Password,
        "confirmpassword" | "password2" => Column::ConfirmPassword,
        other => return contact(other),
    };
    Some(column)
}

/// Whether a header is `Login Access`: the column that marks a saved-search export with one
/// row per contact (`Login Access`, `Access Role`) instead of one per customer.
pub fn is_login_access(header: &str) -> bool {
    compact(header) == "loginaccess"
}

/// Whether a header is the contact's own id in a one-row-per-contact export (`Internal ID`,
/// `ID`): known, and not needed (contacts are matched by email).
pub fn is_contact_own_id(header: &str) -> bool {
    matches!(compact(header).as_str(), "internalid" | "id")
}

/// The column a header names in a one-row-per-contact export: the customer's id (a join
/// column such as `Customer : Internal ID`), and the contact's fields, each read as entry 1
/// of that row's contact sublist. A bare `Internal ID` is the contact's own id there, so it
/// is not taken for the customer's.
pub fn parse_per_contact(header: &str) -> Option<Column> {
    let field = |f| Some(Column::Contact(1, f));
    match compact(header).as_str() {
        "customer:internalid"
        | "company:internalid"
        | "customerinternalid"
        | "companyinternalid"
        | "customerid"
        | "companyid"
        | "customer:id"
        | "company:id" => Some(Column::Id),
        "companyname" | "customername" => Some(Column::Name),
        "email" | "emailaddress" => field(ContactField::Email),
        "loginaccess" | "giveaccess" | "access" => field(ContactField::Access),
        "accessrole" | "role" => field(ContactField::Role),
        "contact" | "name" | "contactname" => field(ContactField::Name),
        "sendnewaccessnotificationemail" | "sendnotificationemail" | "sendemail" | "notify" => {
            field(ContactField::Notify)
        }
        "password" => field(ContactField::Password),
        "confirmpassword" | "password2" => field(ContactField::ConfirmPassword),
        _ => None,
    }
}

fn contact(name: &str) -> Option<Column> {
    let rest = name.strip_prefix("contactaccess")?;
    let (index, field) = rest.split_once(':')?;
    let index: usize = index.parse().ok().filter(|n| *n >= 1)?;
    let field = match field {
        "contact" | "name" => ContactField::Name,
        "email" => ContactField::Email,
        "access" | "giveaccess" => ContactField::Access,
        "notify" | "sendnotificationemail" | "sendemail" => ContactField::Notify,
        "role" | "accessrole" => ContactField::Role,
        "password" => ContactField::Password,
        "confirmpassword" | "password2" => ContactField::ConfirmPassword,
        _ => return None,
    };
    Some(Column::Contact(index, field))
}

/// The closest known column name to an unknown header.
pub fn suggestion(header: &str) -> Option<String> {
    let given = normalize(header);
    // Contact sublist headers: suggest with the same index.
    let index = given
        .strip_prefix("contact access ")
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.trim().parse::<usize>().ok());
    let candidates: Vec<String> = KNOWN
        .iter()
        .map(|k| match index {
            Some(n) => k.replace("Contact Access 1 ", &format!("Contact Access {n} ")),
            None => k.to_string(),
        })
        .collect();
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(&given, &normalize(c)), c))
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c.clone())
        // Never the same name back (a header that only looks known, such as an index 0).
        .filter(|c| normalize(c) != given)
}

/// A cell that is not a yes/no value.
#[derive(Debug, PartialEq, Eq)]
pub struct NotABoolean;

/// Reads a NetSuite boolean: Yes/No, True/False, T/F, 1/0 in any case; empty is not given.
pub fn boolean(value: &str) -> Result<Option<bool>, NotABoolean> {
    match value.trim().to_lowercase().as_str() {
        "" => Ok(None),
        "yes" | "y" | "true" | "t" | "1" => Ok(Some(true)),
        "no" | "n" | "false" | "f" | "0" => Ok(Some(false)),
        _ => Err(NotABoolean),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_row_per_contact_headers() {
        assert!(is_login_access("Login Access") && is_login_access("loginaccess"));
        assert!(!is_login_access("Give Access"));
        for (header, column) in [
            ("Customer : Internal ID", Column::Id),
            ("Company : Internal ID", Column::Id),
            ("Customer ID", Column::Id),
            ("Email", Column::Contact(1, ContactField::Email)),
            ("Login Access", Column::Contact(1, ContactField::Access)),
            ("Access Role", Column::Contact(1, ContactField::Role)),
            ("Contact", Column::Contact(1, ContactField::Name)),
            (
                "Send Notification Email",
                Column::Contact(1, ContactField::Notify),
            ),
            ("Company Name", Column::Name),
        ] {
            assert_eq!(parse_per_contact(header), Some(column), "{header}");
        }
        // The contact's own id is known and unused; a company's display name is no id.
        assert!(is_contact_own_id("Internal ID") && is_contact_own_id("ID"));
        assert_eq!(parse_per_contact("Internal ID"), None);
        assert_eq!(parse_per_contact("Company"), None);
    }

    #[test]
    fn netsuite_headers_in_any_spelling() {
        assert_eq!(parse(" Internal ID "), Some(Column::Id));
        // Spaces, case and punctuation do not matter; NetSuite's internal ids work too.
        for (header, column) in [
            ("E Mail", Column::Email),
            ("AssignedWebsite", Column::Website),
            ("Assigned Web Site", Column::Website),
            ("internalid", Column::Id),
            ("entityid", Column::Id),
            ("giveaccess", Column::GiveAccess),
            ("sendemail", Column::Notify),
            ("accessrole", Column::Role),
            ("password2", Column::ConfirmPassword),
            ("Give_Access", Column::GiveAccess),
        ] {
            assert_eq!(parse(header), Some(column), "{header}");
        }
        assert_eq!(
            parse("ContactAccess3:E-mail"),
            Some(Column::Contact(3, ContactField::Email))
        );
        assert_eq!(
            parse("Website"),
            None,
            "a customer's web address is not its access website"
        );
        assert_eq!(parse("GIVE ACCESS"), Some(Column::GiveAccess));
        assert_eq!(
            parse("Contact Access 2 : Email"),
            Some(Column::Contact(2, ContactField::Email))
        );
        assert_eq!(
            parse("contact access 10:notify"),
            Some(Column::Contact(10, ContactField::Notify))
        );
        assert_eq!(parse("Contact Access 0 : Email"), None);
        assert_eq!(parse("Emial"), None);
        assert_eq!(suggestion("Emial").as_deref(), Some("Email"));
        assert_eq!(
            suggestion("Contact Access 3 : Emial").as_deref(),
            Some("Contact Access 3 : Email")
        );
    }

    #[test]
    fn booleans_as_netsuite_accepts_them() {
        for yes in ["Yes", "TRUE", "t", "1", " T "] {
            assert_eq!(boolean(yes), Ok(Some(true)), "{yes}");
        }
        for no in ["No", "false", "F", "0"] {
            assert_eq!(boolean(no), Ok(Some(false)), "{no}");
        }
        assert_eq!(boolean(""), Ok(None));
        assert_eq!(boolean("maybe"), Err(NotABoolean));
    }
}
