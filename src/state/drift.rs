//! What plan needs of the store's bookkeeping, as plain data: the digest of each object as
//! portico last wrote it (drift labels), and which read of which store a plan came from.

use std::collections::HashMap;

use compact_str::CompactString;

type Map<K> = HashMap<K, ObjectDigest, foldhash::fast::RandomState>;

/// Digests of the objects as portico last wrote them: the logins' by their row's key (read
/// with the rows themselves), the few other objects' by resource address. No address is
/// built for a login: at 300,000 logins, formatting and hashing them took 0.3 s of a plan.
#[derive(Debug, Default)]
pub struct Applied {
    /// By address: features, roles, websites, policies, settings, OIDC clients.
    pub objects: Map<CompactString>,
    /// By `(customer id, contact)`; the contact is `""` for the customer itself.
    pub logins: LoginDigests,
    /// Which write of which store was read: the plan's `live_fingerprint`.
    pub version: super::LiveVersion,
}

impl Applied {
    /// The digest recorded for the object at `address`.
    pub fn get(&self, address: &super::Address) -> Option<&ObjectDigest> {
        use super::Address;
        match address {
            Address::Customer(id) => self.logins.get(id, ""),
            Address::Contact { customer, email } => self.logins.get(customer, email),
            other => self.objects.get(other.to_string().as_str()),
        }
    }
}

/// The digests of the logins as portico last wrote them, sorted by `(customer id,
/// contact)` and found by binary search. A plan looks up only the logins it changes, so
/// the list is built for every login but kept plain: a hash map of 300,000 logins took
/// 0.1–0.2 s of every full plan to build.
#[derive(Debug, Default)]
pub struct LoginDigests(Vec<((CompactString, CompactString), ObjectDigest)>);

impl LoginDigests {
    /// The digests given, in any order.
    pub fn new(mut digests: Vec<((CompactString, CompactString), ObjectDigest)>) -> Self {
        // The stores read logins in key order already (by bytes); another order is sorted.
        if !digests.is_sorted_by(|a, b| a.0 <= b.0) {
            digests.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        }
        LoginDigests(digests)
    }

    /// The digest recorded for the login of `customer` and `contact` (`""`: the customer's
    /// own).
    pub fn get(&self, customer: &str, contact: &str) -> Option<&ObjectDigest> {
        self.0
            .binary_search_by(|((c, k), _)| (c.as_str(), k.as_str()).cmp(&(customer, contact)))
            .ok()
            .map(|i| &self.0[i].1)
    }
}

/// A set of logins by `(customer id, contact)` (the contact is `""` for the customer's
/// own), sorted and found by binary search: which live logins hold a password, or which
/// have access. Kept as key pairs rather than formatted addresses: at 300,000 logins a
/// B-tree of address strings took 33 MB of a full plan's peak, these 14 MB.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoginKeys(Vec<(CompactString, CompactString)>);

impl LoginKeys {
    /// The keys given, in any order (a key given twice is kept once).
    pub fn new(mut keys: Vec<(CompactString, CompactString)>) -> Self {
        if !keys.is_sorted_by(|a, b| a < b) {
            keys.sort_unstable();
            keys.dedup();
        }
        keys.shrink_to_fit();
        LoginKeys(keys)
    }

    /// Whether the login of `customer` and `contact` (`""`: the customer's own) is in the set.
    pub fn contains(&self, customer: &str, contact: &str) -> bool {
        self.0
            .binary_search_by(|(c, k)| (c.as_str(), k.as_str()).cmp(&(customer, contact)))
            .is_ok()
    }

    /// Whether the login at `address` is in the set (anything else is not).
    pub fn holds(&self, address: &super::Address) -> bool {
        use super::Address;
        match address {
            Address::Customer(id) => self.contains(id, ""),
            Address::Contact { customer, email } => self.contains(customer, email),
            _ => false,
        }
    }

    /// How many logins.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The reset markers portico last set on live logins (`logins.password_marker`), by
/// `(customer id, contact)`, sorted: what `import-csv` needs of the live logins it edits,
/// read without them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PasswordMarkers(Vec<((CompactString, CompactString), u32)>);

impl PasswordMarkers {
    /// The markers given, in any order (for a key given twice, the last).
    pub fn new(mut markers: Vec<((CompactString, CompactString), u32)>) -> Self {
        if !markers.is_sorted_by(|a, b| a.0 < b.0) {
            markers.reverse();
            markers.sort_by(|a, b| a.0.cmp(&b.0));
            markers.dedup_by(|later, first| later.0 == first.0);
        }
        markers.shrink_to_fit();
        PasswordMarkers(markers)
    }

    /// The marker of the login of `customer` and `contact` (`""`: the customer's own).
    pub fn get(&self, customer: &str, contact: &str) -> Option<u32> {
        let at = self
            .0
            .binary_search_by(|((c, k), _)| (c.as_str(), k.as_str()).cmp(&(customer, contact)))
            .ok()?;
        Some(self.0[at].1)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_digests_are_found_by_key_in_any_order_given() {
        let key = |c: &str, k: &str| (CompactString::from(c), CompactString::from(k));
        // Byte order puts "B" before "a" and "" before any contact.
        let digests = LoginDigests::new(vec![
            (key("a", "x@e"), ObjectDigest(3)),
            (key("B", ""), ObjectDigest(1)),
            (key("a", ""), ObjectDigest(2)),
            (key("é", "y@e"), ObjectDigest(4)),
        ]);
        assert_eq!(digests.get("B", ""), Some(&ObjectDigest(1)));
        assert_eq!(digests.get("a", ""), Some(&ObjectDigest(2)));
        assert_eq!(digests.get("a", "x@e"), Some(&ObjectDigest(3)));
        assert_eq!(digests.get("é", "y@e"), Some(&ObjectDigest(4)));
        assert_eq!(digests.get("b", ""), None);
        assert_eq!(digests.get("a", "y@e"), None);
        let applied = Applied {
            logins: digests,
            ..Applied::default()
        };
        let contact = super::super::Address::Contact {
            customer: "a".into(),
            email: "x@e".into(),
        };
        assert_eq!(applied.get(&contact), Some(&ObjectDigest(3)));
        assert_eq!(
            applied.get(&super::super::Address::Customer("B".into())),
            Some(&ObjectDigest(1))
        );
    }
}
