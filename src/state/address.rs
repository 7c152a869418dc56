//! Resource addresses (`customer["CUST-0042"].contact["jane@acme.example"]`): which object a
//! plan's change, a drift digest or a validation message is about.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::catalog::Feature;

/// Which object a change is about. Its `Display` is the resource address shown in plans.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Address {
    /// `feature["customer_access"]`
    Feature(Feature),
    /// `login_policy`
    LoginPolicy,
    /// `notifications`
    Notifications,
    /// `website["store-eu"]`
    Website(String),
    /// `role["acme-center"]`
    Role(String),
    /// `customer["CUST-0042"]`
    Customer(String),
    /// `customer["CUST-0042"].contact["jane@acme.example"]`
    Contact {
        /// The customer's id.
        customer: String,
        /// The contact's normalised email.
        email: String,
    },
    /// `policy["payments-need-approval"]`
    Policy(String),
    /// `oidc_client["billing-portal"]`
    OidcClient(String),
}

impl Address {
    /// The address of a login as the database keys it: the customer's own when `contact`
    /// is empty, else the contact with that email.
    pub fn login(customer: &str, contact: &str) -> Address {
        if contact.is_empty() {
            Address::Customer(customer.to_string())
        } else {
            Address::Contact {
                customer: customer.to_string(),
                email: contact.to_string(),
            }
        }
    }

    /// Every [`Address::kind`], in the order `plan --summary` lists them.
    pub const KINDS: [&'static str; 9] = [
        "feature",
        "login_policy",
        "notifications",
        "policy",
        "website",
        "role",
        "customer",
        "contact",
        "oidc_client",
    ];

    /// The kind of resource, as counted by `plan --summary`.
    pub fn kind(&self) -> &'static str {
        match self {
            Address::Feature(_) => "feature",
            Address::LoginPolicy => "login_policy",
            Address::Notifications => "notifications",
            Address::Website(_) => "website",
            Address::Role(_) => "role",
            Address::Customer(_) => "customer",
            Address::Contact { .. } => "contact",
            Address::Policy(_) => "policy",
            Address::OidcClient(_) => "oidc_client",
        }
    }
}

/// An id as it appears in an address: quoted, with quotes, backslashes, controls and
/// invisible format characters escaped.
struct Key<'a>(&'a str);

impl fmt::Display for Key<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"")?;
        for c in self.0.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                c if crate::unicode::is_invisible(c) => write!(f, "\\u{{{:x}}}", c as u32)?,
                c => write!(f, "{c}")?,
            }
        }
        f.write_str("\"")
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Address::Feature(feature) => write!(f, "feature[{}]", Key(feature.key())),
            Address::LoginPolicy => f.write_str("login_policy"),
            Address::Notifications => f.write_str("notifications"),
            Address::Website(id) => write!(f, "website[{}]", Key(id)),
            Address::Role(id) => write!(f, "role[{}]", Key(id)),
            Address::Customer(id) => write!(f, "customer[{}]", Key(id)),
            Address::Contact { customer, email } => {
                write!(f, "customer[{}].contact[{}]", Key(customer), Key(email))
            }
            Address::Policy(id) => write!(f, "policy[{}]", Key(id)),
            Address::OidcClient(id) => write!(f, "oidc_client[{}]", Key(id)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_listed_once() {
        let every = [
            Address::Feature(Feature::CustomerAccess),
            Address::LoginPolicy,
            Address::Notifications,
            Address::Policy("p".into()),
            Address::Website("w".into()),
            Address::Role("r".into()),
            Address::Customer("c".into()),
            Address::Contact {
                customer: "c".into(),
                email: "e@x.example".into(),
            },
            Address::OidcClient("o".into()),
        ];
        let kinds: Vec<&str> = every.iter().map(Address::kind).collect();
        assert_eq!(kinds, Address::KINDS);
    }
}
