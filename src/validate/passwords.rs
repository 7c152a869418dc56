//! The password sources the manifests name: which login (or OpenID Connect client) gets
//! which initial secret.

use compact_str::CompactString;

use crate::passwords::SecretRef;
use crate::state::Address;

/// Initial password sources: logins' by customer id (the customer's own login and its
/// contacts', by normalised email), OpenID Connect clients' by client id.
///
/// Kept by customer rather than by formatted address: at 400,000 logins with a pre-hashed
/// password each, a map keyed by address strings held a key and a copy of the hash per
/// login (about 100 MB at a full plan's peak); here a customer's ids are inline strings and
/// an `argon2` hash is shared with the manifests it was read from.
#[derive(Clone, Debug, Default)]
pub struct Passwords {
    logins: foldhash::HashMap<CompactString, Sources>,
    clients: foldhash::HashMap<String, SecretRef>,
}

/// One customer's sources.
#[derive(Clone, Debug, Default)]
struct Sources {
    own: Option<SecretRef>,
    /// By the contact's normalised email, in the order they were declared.
    contacts: Vec<(CompactString, SecretRef)>,
}

impl Sources {
    /// Records a contact's source, in place of an earlier one for the same email.
    fn set_contact(&mut self, email: CompactString, source: SecretRef) {
        match self.contacts.iter_mut().find(|(e, _)| *e == email) {
            Some((_, old)) => *old = source,
            None => self.contacts.push((email, source)),
        }
    }
}

impl Passwords {
    /// The source of the login or client at `address`, if the manifests name one.
    pub fn get(&self, address: &Address) -> Option<&SecretRef> {
        match address {
            Address::Customer(id) => self.logins.get(id.as_str())?.own.as_ref(),
            Address::Contact { customer, email } => self.contact(customer, email),
            Address::OidcClient(id) => self.clients.get(id),
            _ => None,
        }
    }

    /// The source of a login, by customer id and contact email (`None`: the customer's own).
    pub fn login(&self, customer: &str, contact: Option<&str>) -> Option<&SecretRef> {
        match contact {
            None => self.logins.get(customer)?.own.as_ref(),
            Some(email) => self.contact(customer, email),
        }
    }

    fn contact(&self, customer: &str, email: &str) -> Option<&SecretRef> {
        let sources = self.logins.get(customer)?;
        sources
            .contacts
            .iter()
            .find(|(e, _)| e == email)
            .map(|(_, source)| source)
    }

    /// Records a login's source: `contact` is the contact's normalised email, `None` for
    /// the customer's own login. A login named again replaces the earlier source (the
    /// duplicate is reported by validation).
    pub fn insert_login(&mut self, customer: &str, contact: Option<&str>, source: SecretRef) {
        let sources = match self.logins.get_mut(customer) {
            Some(sources) => sources,
            None => self.logins.entry(customer.into()).or_default(),
        };
        match contact {
            None => sources.own = Some(source),
            Some(email) => sources.set_contact(email.into(), source),
        }
    }

    /// Records an OpenID Connect client's secret source.
    pub fn insert_client(&mut self, id: &str, source: SecretRef) {
        self.clients.insert(id.to_string(), source);
    }

    /// Frees the room a customer's list of contact sources holds beyond its length: grown
    /// by pushing, a list of two held room for four (at 300,000 logins, 10 MB of a full
    /// plan's peak).
    pub(super) fn fit(&mut self, customer: &str) {
        if let Some(sources) = self.logins.get_mut(customer) {
            sources.contacts.shrink_to_fit();
        }
    }

    /// The sources of the chunks of customers, in order: a later chunk's replace an
    /// earlier one's. The map is sized once (joined by growing, its last growth held the
    /// old table and the new at once).
    pub(super) fn joined(chunks: Vec<Passwords>) -> Passwords {
        let customers = chunks.iter().map(|p| p.logins.len()).sum();
        let mut joined = Passwords {
            logins: foldhash::HashMap::with_capacity_and_hasher(customers, Default::default()),
            clients: foldhash::HashMap::default(),
        };
        for chunk in chunks {
            joined.extend(chunk);
        }
        joined
    }

    /// Takes in another set's sources (a later chunk of customers): theirs replace these.
    pub(super) fn extend(&mut self, other: Passwords) {
        if self.logins.is_empty() && self.logins.capacity() < other.logins.len() {
            self.logins = other.logins;
        } else {
            self.logins.reserve(other.logins.len());
            for (customer, theirs) in other.logins {
                let Some(ours) = self.logins.get_mut(&customer) else {
                    self.logins.insert(customer, theirs);
                    continue;
                };
                if let Some(own) = theirs.own {
                    ours.own = Some(own);
                }
                for (email, source) in theirs.contacts {
                    ours.set_contact(email, source);
                }
            }
        }
        self.clients.extend(other.clients);
    }

    /// Forgets every source.
    pub fn clear(&mut self) {
        self.logins.clear();
        self.clients.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> SecretRef {
        SecretRef::Env(name.into())
    }

    fn contact(customer: &str, email: &str) -> Address {
        Address::Contact {
            customer: customer.into(),
            email: email.into(),
        }
    }

    #[test]
    fn sources_are_found_by_address_and_by_login() {
        let mut p = Passwords::default();
        p.insert_login("C1", None, env("OWN"));
        p.insert_login("C1", Some("a@x.example"), env("A"));
        p.insert_login("C2", Some("a@x.example"), env("C2A"));
        p.insert_client("portal", env("CLIENT"));
        assert_eq!(p.get(&Address::Customer("C1".into())), Some(&env("OWN")));
        assert_eq!(p.get(&contact("C1", "a@x.example")), Some(&env("A")));
        assert_eq!(p.get(&contact("C2", "a@x.example")), Some(&env("C2A")));
        assert_eq!(p.login("C2", Some("a@x.example")), Some(&env("C2A")));
        assert_eq!(p.get(&Address::Customer("C2".into())), None);
        assert_eq!(p.get(&contact("C1", "b@x.example")), None);
        assert_eq!(
            p.get(&Address::OidcClient("portal".into())),
            Some(&env("CLIENT"))
        );
        // A client and a customer with the same id are different things.
        assert_eq!(p.get(&Address::Customer("portal".into())), None);
        assert_eq!(p.get(&Address::Role("C1".into())), None);
        p.clear();
        assert_eq!(p.get(&Address::Customer("C1".into())), None);
        assert_eq!(p.get(&Address::OidcClient("portal".into())), None);
    }

    #[test]
    fn a_later_source_replaces_an_earlier_one_also_across_chunks() {
        let mut first = Passwords::default();
        first.insert_login("C1", Some("a@x.example"), env("FIRST"));
        first.insert_login("C1", Some("a@x.example"), env("SECOND"));
        assert_eq!(
            first.get(&contact("C1", "a@x.example")),
            Some(&env("SECOND"))
        );
        let mut later = Passwords::default();
        later.insert_login("C1", Some("a@x.example"), env("LATER"));
        later.insert_login("C1", None, env("OWN"));
        later.insert_login("C9", None, env("NINE"));
        first.extend(later);
        assert_eq!(
            first.get(&contact("C1", "a@x.example")),
            Some(&env("LATER"))
        );
        assert_eq!(
            first.get(&Address::Customer("C1".into())),
            Some(&env("OWN"))
        );
        assert_eq!(
            first.get(&Address::Customer("C9".into())),
            Some(&env("NINE"))
        );
        let mut empty = Passwords::default();
        empty.extend(first.clone());
        assert_eq!(
            empty.get(&Address::Customer("C9".into())),
            Some(&env("NINE"))
        );
    }
}
