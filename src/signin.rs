//! The one sign-in decision (DESIGN §10.1): whether a login may get in at a given time, on a
//! given website, and if not, every reason why. `access`, `report` (and the login service)
//! ask this; nothing else re-derives it. Pure: the caller brings the applied state, the
//! login's runtime facts and the time.

use crate::catalog::Feature;
use crate::manifest::model::TwoFactor;
use crate::state::{LoginState, State};

/// What the customer center knows about a login at run time (not planned by portico).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Runtime {
    /// A password hash is stored (assigned or set by the customer).
    pub password_set: bool,
    /// Locked until this time (`YYYY-MM-DDTHH:MM:SSZ`), when a lockout was recorded.
    pub locked_until: Option<String>,
    /// Consecutive failed sign-ins.
    pub failed_attempts: i64,
    /// The login turned on a second factor itself (on its profile page): it is then asked for
    /// it at every sign-in, whether or not its role requires one.
    pub second_factor: bool,
}

/// One reason a login may not get in, in the order they are checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The account's Customer Access feature is off.
    FeatureOff,
    /// Access is not given to this login.
    NoAccess,
    /// Access ended at this time.
    Expired(String),
    /// Locked after failed attempts, until this time.
    Locked {
        /// When the lock ends.
        until: String,
        /// The failed attempts that locked it.
        failed_attempts: i64,
    },
    /// No password is set yet.
    NoPassword,
    /// The login belongs to another website than the one asked for.
    WrongWebsite {
        /// The login's website.
        allowed: String,
    },
}

/// Where a sign-in is asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Site<'a> {
    /// No request: `access` and `report` ask whether the login may get in at all.
    Anywhere,
    /// A request on this website (`None`: a host that is no website's, such as
    /// `notifications.login_url`'s). A login with a website signs in only there; one without,
    /// anywhere.
    Request(Option<&'a str>),
}

/// The decision for one login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    /// Every reason it may not get in; empty when it may.
    pub refusals: Vec<Refusal>,
    /// After the password, a second factor is asked for: its role requires one, or the login
    /// turned one on itself.
    pub second_factor: bool,
}

impl Decision {
    /// Whether the login may get in (after the second factor when [`Decision::second_factor`]).
    pub fn may_enter(&self) -> bool {
        self.refusals.is_empty()
    }

    /// Whether a recorded lockout is still running.
    pub fn locked(&self) -> bool {
        self.refusals
            .iter()
            .any(|r| matches!(r, Refusal::Locked { .. }))
    }
}

/// Decides whether `login` may get in at `now` (`YYYY-MM-DDTHH:MM:SSZ`, which sorts as
/// text). `runtime` is `None` where nothing is known of the login's use (a plan from the
/// manifests): the password and the lockout are then not judged. `site` is where the
/// sign-in is asked for.
pub fn decide(
    state: &State,
    login: &LoginState,
    runtime: Option<&Runtime>,
    site: Site<'_>,
    now: &str,
) -> Decision {
    let mut refusals = Vec::new();
    if !state.feature(Feature::CustomerAccess) {
        refusals.push(Refusal::FeatureOff);
    }
    if !login.access {
        refusals.push(Refusal::NoAccess);
    }
    if let Some(expires) = &login.expires
        && crate::clock::expired(expires, now)
    {
        refusals.push(Refusal::Expired(expires.to_string()));
    }
    if let Some(runtime) = runtime {
        if let Some(until) = runtime.locked_until.as_deref()
            && until > now
        {
            refusals.push(Refusal::Locked {
                until: until.to_string(),
                failed_attempts: runtime.failed_attempts,
            });
        }
        if !runtime.password_set {
            refusals.push(Refusal::NoPassword);
        }
    }
    if let (Site::Request(asked), Some(own)) = (site, login.website.as_deref())
        && asked != Some(own)
    {
        refusals.push(Refusal::WrongWebsite {
            allowed: own.to_string(),
        });
    }
    let second_factor = state
        .roles
        .get(login.role.as_str())
        .is_some_and(|r| r.two_factor == TwoFactor::Required)
        || runtime.is_some_and(|r| r.second_factor);
    Decision {
        refusals,
        second_factor,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> (State, LoginState) {
        let mut state = State::default();
        state.features.insert(Feature::CustomerAccess, true);
        let login = LoginState {
            email: Some("jane@acme.example".into()),
            name: None,
            access: true,
            role: "customer_center".into(),
            website: Some("store-eu".into()),
            notify: false,
            password: None,
            expires: Some("2027-03-31T23:59:59Z".into()),
        };
        (state, login)
    }

    const NOW: &str = "2027-03-01T00:00:00Z";

    #[test]
    fn a_login_with_access_a_password_and_no_lock_gets_in() {
        let (state, login) = account();
        let runtime = Runtime {
            password_set: true,
            ..Runtime::default()
        };
        let decision = decide(
            &state,
            &login,
            Some(&runtime),
            Site::Request(Some("store-eu")),
            NOW,
        );
        assert!(decision.may_enter(), "{decision:?}");
        assert!(!decision.second_factor);
        // Without runtime facts (the manifests' view) only the planned conditions count.
        assert!(decide(&state, &login, None, Site::Anywhere, NOW).may_enter());
    }

    #[test]
    fn every_reason_is_given_in_order() {
        let (mut state, mut login) = account();
        state.features.insert(Feature::CustomerAccess, false);
        login.access = false;
        let runtime = Runtime {
            password_set: false,
            locked_until: Some("2027-03-01T00:30:00Z".into()),
            failed_attempts: 5,
            second_factor: false,
        };
        let decision = decide(
            &state,
            &login,
            Some(&runtime),
            Site::Request(Some("store-us")),
            "2027-04-01T00:00:00Z",
        );
        assert_eq!(
            decision.refusals,
            [
                Refusal::FeatureOff,
                Refusal::NoAccess,
                Refusal::Expired("2027-03-31T23:59:59Z".into()),
                Refusal::NoPassword,
                Refusal::WrongWebsite {
                    allowed: "store-eu".into()
                },
            ],
            "the lock ended before this time"
        );
        let locked = decide(&state, &login, Some(&runtime), Site::Anywhere, NOW);
        assert!(locked.locked());
        assert!(!locked.may_enter());
    }

    #[test]
    fn expiry_ends_access_at_its_second_and_a_role_may_ask_for_a_second_factor() {
        let (mut state, login) = account();
        // The expiry's own second still counts; the next one does not.
        assert!(decide(&state, &login, None, Site::Anywhere, "2027-03-31T23:59:59Z").may_enter());
        assert!(!decide(&state, &login, None, Site::Anywhere, "2027-04-01T00:00:00Z").may_enter());
        state.roles.insert(
            "customer_center".into(),
            crate::state::RoleState {
                name: "Customer Center".into(),
                base: "customer_center".into(),
                permissions: Default::default(),
                two_factor: TwoFactor::Required,
            },
        );
        assert!(decide(&state, &login, None, Site::Anywhere, NOW).second_factor);
        // A login without a website signs in on any website.
        let anywhere = LoginState {
            website: None,
            ..login.clone()
        };
        assert!(
            decide(
                &state,
                &anywhere,
                None,
                Site::Request(Some("store-us")),
                NOW
            )
            .may_enter()
        );
        assert!(decide(&state, &anywhere, None, Site::Request(None), NOW).may_enter());
        // One with a website: only there, not on a host that is no website's.
        assert!(!decide(&state, &login, None, Site::Request(None), NOW).may_enter());
    }

    #[test]
    fn a_login_that_turned_on_a_second_factor_is_asked_for_it_whatever_its_role() {
        let (state, login) = account();
        let mut runtime = Runtime {
            password_set: true,
            ..Runtime::default()
        };
        let plain = decide(&state, &login, Some(&runtime), Site::Anywhere, NOW);
        assert!(plain.may_enter() && !plain.second_factor);
        runtime.second_factor = true;
        let asked = decide(&state, &login, Some(&runtime), Site::Anywhere, NOW);
        assert!(asked.may_enter() && asked.second_factor);
    }
}
