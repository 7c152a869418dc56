//! What plan needs of the store's bookkeeping, as plain data: the digest of each object as
//! portico last wrote it (drift labels), and which read of which store a plan came from.

use std::collections::HashMap;

type Map<K> = HashMap<K, ObjectDigest, foldhash::fast::RandomState>;

/// Digests of the objects as portico last wrote them: the logins' by their row's key (read
/// with the rows themselves), the few other objects' by resource address. No address is
/// built for a login: at 300,000 logins, formatting and hashing them took 0.3 s of a plan.
#[derive(Debug, Default)]
pub struct Applied {
    /// By address: features, roles, websites, policies, settings, OIDC clients.
    pub objects: Map<compact_str::CompactString>,
    /// By `(customer id, contact)`; the contact is `""` for the customer itself.
    pub logins: Map<(compact_str::CompactString, compact_str::CompactString)>,
    /// Which write of which store was read: the plan's `live_fingerprint`.
    pub version: super::LiveVersion,
}

impl Applied {
    /// The digest recorded for the object at `address`.
    pub fn get(&self, address: &super::Address) -> Option<&ObjectDigest> {
        use super::Address;
        match address {
            Address::Customer(id) => self.logins.get(&(id.as_str().into(), "".into())),
            Address::Contact { customer, email } => self
                .logins
                .get(&(customer.as_str().into(), email.as_str().into())),
            other => self.objects.get(other.to_string().as_str()),
        }
    }
}

/// An object digest (16 hex digits, see `Object::digest` in the plan), held as the 64-bit
/// number they spell: as text in `applied_objects`, as that number (signed) in a login's row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ObjectDigest(pub(crate) u64);

impl ObjectDigest {
    /// The digest spelled by `hex`. Anything else (a value edited by hand) reads as a digest
    /// no object has, so the object shows as changed outside portico.
    pub fn from_hex(hex: &str) -> ObjectDigest {
        match hex.len() {
            16 if hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                ObjectDigest(u64::from_str_radix(hex, 16).unwrap_or(u64::MAX))
            }
            _ => ObjectDigest(u64::MAX),
        }
    }
}

impl ObjectDigest {
    /// As a login row stores it: the same 64 bits, signed.
    pub fn as_i64(self) -> i64 {
        self.0.cast_signed()
    }

    /// The digest a login row stores.
    pub fn from_i64(value: i64) -> ObjectDigest {
        ObjectDigest(value.cast_unsigned())
    }
}

impl<'de> serde::Deserialize<'de> for ObjectDigest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let hex = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Ok(ObjectDigest::from_hex(&hex))
    }
}

/// Which read of which store a plan was computed from (see [`Store::read_mark`]). Never
/// saved with a plan: only a plan computed in this process carries one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadMark {
    /// A random number per opened store.
    pub(crate) store: u64,
    /// SQLite's `data_version` during the read (it changes whenever another connection
    /// commits) and the connection's own `total_changes()`.
    pub(crate) version: (i64, i64),
}
