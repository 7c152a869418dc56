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
/// an `argon2` hash is shared with the manifests it was read from. The customers are a
/// list sorted by id and found by binary search: per-chunk hash maps joined into one held
/// 27 MB at 300,000 logins, where the list holds 8.
#[derive(Clone, Debug, Default)]
pub struct Passwords {
    /// By customer id; sorted unless `unsorted` (a customer added out of order before the
    /// list was joined: then found by a scan).
    logins: Vec<(CompactString, Sources)>,
    unsorted: bool,
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

    /// Takes in a later declaration's sources: theirs replace these.
    fn take(&mut self, later: Sources) {
        if let Some(own) = later.own {
            self.own = Some(own);
        }
        for (email, source) in later.contacts {
            self.set_contact(email, source);
        }
    }
}

impl Passwords {
    /// The source of the login or client at `address`, if the manifests name one.
    pub fn get(&self, address: &Address) -> Option<&SecretRef> {
        match address {
            Address::Customer(id) => self.sources(id)?.own.as_ref(),
            Address::Contact { customer, email } => self.contact(customer, email),
            Address::OidcClient(id) => self.clients.get(id),
            _ => None,
        }
    }

    /// The source of a login, by customer id and contact email (`None`: the customer's own).
    pub fn login(&self, customer: &str, contact: Option<&str>) -> Option<&SecretRef> {
        match contact {
            None => self.sources(customer)?.own.as_ref(),
            Some(email) => self.contact(customer, email),
        }
    }

    fn sources(&self, customer: &str) -> Option<&Sources> {
        let at = self.find(customer).ok()?;
        Some(&self.logins[at].1)
    }

    /// Where `customer` is (`Err`: where it would go, when the list is sorted).
    fn find(&self, customer: &str) -> Result<usize, usize> {
        if self.unsorted {
            let at = self.logins.iter().rposition(|(id, _)| id == customer);
            return at.ok_or(self.logins.len());
        }
        self.logins
            .binary_search_by(|(id, _)| id.as_str().cmp(customer))
    }

    fn contact(&self, customer: &str, email: &str) -> Option<&SecretRef> {
        let sources = self.sources(customer)?;
        sources
            .contacts
            .iter()
            .find(|(e, _)| e == email)
            .map(|(_, source)| source)
    }

    /// Records a login's source: `contact` is the contact's normalised email, `None` for
    /// the customer's own login. A login named again replaces the earlier source (the
    /// duplicate is reported by validation). Validation gives a customer's logins one after
    /// another, so the customer is usually the last one listed.
    pub fn insert_login(&mut self, customer: &str, contact: Option<&str>, source: SecretRef) {
        let at = match self.logins.last() {
            Some((last, _)) if last == customer => self.logins.len() - 1,
            Some((last, _)) if last.as_str() > customer && !self.unsorted => {
                match self.find(customer) {
                    Ok(at) => at,
                    Err(_) => {
                        // Out of order: listed last, found by a scan until joined.
                        self.unsorted = true;
                        self.logins.push((customer.into(), Sources::default()));
                        self.logins.len() - 1
                    }
                }
            }
            _ => match self.find(customer) {
                Ok(at) => at,
                Err(_) => {
                    self.logins.push((customer.into(), Sources::default()));
                    self.logins.len() - 1
                }
            },
        };
        let sources = &mut self.logins[at].1;
        match contact {
            None => sources.own = Some(source),
            Some(email) => sources.set_contact(email.into(), source),
        }
    }

    /// Frees the room a customer's list of contact sources holds beyond its length: grown
    /// by pushing, a list of two held room for four (at 300,000 logins, 10 MB of a full
    /// plan's peak).
    pub(super) fn fit(&mut self, customer: &str) {
        if let Some((last, sources)) = self.logins.last_mut()
            && last == customer
        {
            sources.contacts.shrink_to_fit();
        }
    }

    /// Records an OpenID Connect client's secret source.
    pub fn insert_client(&mut self, id: &str, source: SecretRef) {
        self.clients.insert(id.to_string(), source);
    }

    /// The sources of the chunks of customers, in order: a later chunk's replace an
    /// earlier one's. Sorted once, by id (a stable sort keeps declarations in order).
    pub(super) fn joined(chunks: Vec<Passwords>) -> Passwords {
        let customers = chunks.iter().map(|p| p.logins.len()).sum();
        let mut all: Vec<(CompactString, Sources)> = Vec::with_capacity(customers);
        let mut clients = foldhash::HashMap::default();
        for chunk in chunks {
            all.extend(chunk.logins);
            clients.extend(chunk.clients);
        }
        if !all.is_sorted_by(|a, b| a.0 < b.0) {
            all.sort_by(|a, b| a.0.cmp(&b.0));
            let mut kept: Vec<(CompactString, Sources)> = Vec::with_capacity(all.len());
            for (id, sources) in all {
                match kept.last_mut() {
                    Some((last, earlier)) if *last == id => earlier.take(sources),
                    _ => kept.push((id, sources)),
                }
            }
            all = kept;
        }
        Passwords {
            logins: all,
            unsorted: false,
            clients,
        }
    }

    /// Forgets every source.
    pub fn clear(&mut self) {
        self.logins.clear();
        self.unsorted = false;
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
        let first = Passwords::joined(vec![first, later]);
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
        let empty = Passwords::joined(vec![Passwords::default(), first.clone()]);
        assert_eq!(
            empty.get(&Address::Customer("C9".into())),
            Some(&env("NINE"))
        );
    }

    #[test]
    fn customers_given_out_of_order_are_found_before_and_after_the_join() {
        let mut chunk = Passwords::default();
        for id in ["C5", "C2", "C9", "C2"] {
            chunk.insert_login(id, None, env(id));
        }
        chunk.insert_login("C5", Some("a@x.example"), env("C5A"));
        let mut other = Passwords::default();
        other.insert_login("C1", None, env("C1"));
        other.insert_login("C5", Some("b@x.example"), env("C5B"));
        for p in [chunk.clone(), Passwords::joined(vec![chunk, other.clone()])] {
            for id in ["C5", "C2", "C9"] {
                assert_eq!(p.login(id, None), Some(&env(id)), "{id}");
            }
            assert_eq!(p.login("C5", Some("a@x.example")), Some(&env("C5A")));
            assert_eq!(p.login("C3", None), None);
        }
        let joined = Passwords::joined(vec![Passwords::default(), other]);
        assert_eq!(joined.login("C1", None), Some(&env("C1")));
        assert_eq!(joined.login("C5", Some("b@x.example")), Some(&env("C5B")));
        assert_eq!(joined.login("C5", None), None);
    }
}
