//! Built-in catalogs: account features, permission levels, customer-center permissions and
//! the standard (read-only) roles.

use std::collections::BTreeMap;
use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Defines a closed, snake_case-named enum with a catalog table attached to each variant.
macro_rules! catalog_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident : $info:ty {
            $( $(#[doc = $doc:literal])* $variant:ident = $key:literal => $value:expr, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema)]
        pub enum $name {
            $( $(#[doc = $doc])* #[serde(rename = $key)] $variant, )+
        }

        impl $name {
            /// Every entry, in catalog order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name used in manifests and in the database.
            pub fn key(self) -> &'static str {
                match self { $($name::$variant => $key),+ }
            }

            /// The catalog entry for this key.
            pub fn info(self) -> $info {
                match self { $($name::$variant => $value),+ }
            }

            /// Looks a key up as written in a manifest or stored in the database.
            pub fn from_key(key: &str) -> Option<$name> {
                match key { $($key => Some($name::$variant),)+ _ => None }
            }

            /// Every key, for "did you mean" hints and documentation.
            pub fn keys() -> impl Iterator<Item = &'static str> {
                Self::ALL.iter().map(|entry| entry.key())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.key())
            }
        }
    };
}

/// What the catalog says about one account feature.
#[derive(Clone, Copy, Debug)]
pub struct FeatureInfo {
    /// Label as shown on the account's "Enable Features" page.
    pub label: &'static str,
    /// Features that must be on for this one to be on.
    pub requires: &'static [Feature],
}

catalog_enum! {
    /// An account feature that can be switched on or off.
    pub enum Feature: FeatureInfo {
        /// Customer Access: required before any customer or contact can log in.
        CustomerAccess = "customer_access" => FeatureInfo { label: "Customer Access", requires: &[] },
        /// Web sites: required to assign a website to a login.
        Websites = "websites" => FeatureInfo { label: "Web Site", requires: &[Feature::CustomerAccess] },
        /// Two-factor authentication: required by any role with `two_factor: required`.
        TwoFactorAuthentication = "two_factor_authentication" => FeatureInfo { label: "Two-Factor Authentication", requires: &[] },
        /// Support cases in the customer center.
        CaseManagement = "case_management" => FeatureInfo { label: "Case Management", requires: &[Feature::CustomerAccess] },
        /// Online payments from the customer center.
        OnlineCustomerPayments = "online_customer_payments" => FeatureInfo { label: "Online Customer Payments", requires: &[Feature::CustomerAccess] },
    }
}

/// A permission level. Levels are ordered: `none < view < create < edit < full`.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// No access.
    #[default]
    None,
    /// Read only.
    View,
    /// View and create.
    Create,
    /// View, create and edit.
    Edit,
    /// Everything, including delete.
    Full,
}

impl Level {
    /// Every level, lowest first.
    pub const ALL: [Level; 5] = [
        Level::None,
        Level::View,
        Level::Create,
        Level::Edit,
        Level::Full,
    ];

    /// The name used in manifests and in the database.
    pub fn key(self) -> &'static str {
        match self {
            Level::None => "none",
            Level::View => "view",
            Level::Create => "create",
            Level::Edit => "edit",
            Level::Full => "full",
        }
    }

    /// Parses a stored level.
    pub fn from_key(key: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|level| level.key() == key)
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// What the catalog says about one customer-center permission.
#[derive(Clone, Copy, Debug)]
pub struct PermissionInfo {
    /// Label as shown on a role's Permissions subtab.
    pub label: &'static str,
    /// The highest level a customer-center role may grant.
    pub max: Level,
    /// The level the standard Customer Center role grants.
    pub standard: Level,
    /// The account feature without which the permission gives nothing (whatever a role
    /// grants), if any.
    pub feature: Option<Feature>,
}

const fn perm(label: &'static str, max: Level, standard: Level) -> PermissionInfo {
    PermissionInfo {
        label,
        max,
        standard,
        feature: None,
    }
}

const fn perm_with(
    label: &'static str,
    max: Level,
    standard: Level,
    feature: Feature,
) -> PermissionInfo {
    PermissionInfo {
        label,
        max,
        standard,
        feature: Some(feature),
    }
}

catalog_enum! {
    /// A permission a customer-center role can grant.
    pub enum Permission: PermissionInfo {
        Cases = "cases" => perm_with("Cases", Level::Full, Level::Edit, Feature::CaseManagement),
        CreditMemo = "credit_memo" => perm("Credit Memo", Level::View, Level::View),
        CustomerDeposit = "customer_deposit" => perm("Customer Deposit", Level::View, Level::View),
        CustomerPayment = "customer_payment" => perm_with("Customer Payment", Level::Edit, Level::Edit, Feature::OnlineCustomerPayments),
        DepositApplication = "deposit_application" => perm("Deposit Application", Level::View, Level::View),
        DocumentsAndFiles = "documents_and_files" => perm("Documents and Files", Level::Edit, Level::None),
        Estimate = "estimate" => perm("Estimate", Level::Edit, Level::View),
        FindTransaction = "find_transaction" => perm("Find Transaction", Level::View, Level::View),
        GenerateStatements = "generate_statements" => perm("Generate Statements", Level::Create, Level::Create),
        Invoice = "invoice" => perm("Invoice", Level::View, Level::View),
        ReturnAuthorization = "return_authorization" => perm("Return Authorization", Level::Full, Level::Create),
        SalesOrder = "sales_order" => perm("Sales Order", Level::Full, Level::Edit),
    }
}

/// A role that ships with the account: it cannot be edited, only copied (`base:`).
#[derive(Clone, Debug)]
pub struct StandardRole {
    /// Identifier used by `role:` and `base:`.
    pub id: &'static str,
    /// Display name.
    pub name: &'static str,
    /// The levels it grants; permissions not listed are `none`.
    pub permissions: BTreeMap<Permission, Level>,
}

/// The id of the role given to a login that names none.
pub const DEFAULT_ROLE: &str = "customer_center";

/// The standard roles, sorted by id.
pub fn standard_roles() -> Vec<StandardRole> {
    let permissions = Permission::ALL
        .iter()
        .map(|p| (*p, p.info().standard))
        .filter(|(_, level)| *level != Level::None)
        .collect();
    vec![StandardRole {
        id: DEFAULT_ROLE,
        name: "Customer Center",
        permissions,
    }]
}

/// The standard role with this id, if there is one.
pub fn standard_role(id: &str) -> Option<StandardRole> {
    standard_roles().into_iter().find(|role| role.id == id)
}

/// A standard role's level for one permission, without building the role (hot path of
/// policy checks); `None` for a role that is not standard.
pub fn standard_level(role: &str, permission: Permission) -> Option<Level> {
    (role == DEFAULT_ROLE).then(|| permission.info().standard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered() {
        assert!(Level::None < Level::View && Level::View < Level::Create);
        assert!(Level::Create < Level::Edit && Level::Edit < Level::Full);
    }

    #[test]
    fn standard_levels_never_exceed_the_maximum() {
        for permission in Permission::ALL {
            let info = permission.info();
            assert!(info.standard <= info.max, "{permission}");
        }
    }

    #[test]
    fn customer_center_grants_the_documented_defaults() {
        let role = standard_role(DEFAULT_ROLE).unwrap();
        let level = |key| {
            role.permissions
                .get(&Permission::from_key(key).unwrap())
                .copied()
        };
        assert_eq!(level("estimate"), Some(Level::View));
        assert_eq!(level("sales_order"), Some(Level::Edit));
        assert_eq!(level("customer_payment"), Some(Level::Edit));
        assert_eq!(level("return_authorization"), Some(Level::Create));
        assert_eq!(level("documents_and_files"), None);
    }

    #[test]
    fn feature_dependencies_are_acyclic_and_known() {
        for feature in Feature::ALL {
            assert!(!feature.info().requires.contains(feature));
        }
    }
}
