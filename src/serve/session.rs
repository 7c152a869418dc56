//! Sessions and cookies: 128-bit random ids, stored only as their SHA-256, in `__Host-`
//! cookies (HttpOnly, Secure, SameSite=Lax); the form token cookie for double-submit CSRF
//! checks; and the current session of a request, checked against the idle and absolute
//! limits and the sign-in decision on every use.

use axum::http::HeaderMap;
use sha2::Digest;

use super::App;
use crate::store::StoreError;
use crate::store::serve::ServeLogin;

/// A used session's `last_seen_at` is written at most this often (seconds): the idle limit is
/// counted in minutes, and the forward-auth hot path then writes nothing.
const TOUCH_AFTER_SECONDS: i64 = 15;

/// The cookie names and attributes.
pub struct Cookies {
    pub insecure: bool,
    session: &'static str,
    csrf: &'static str,
}

impl Cookies {
    pub fn new(insecure: bool) -> Cookies {
        if insecure {
            Cookies {
                insecure,
                session: "portico-session",
                csrf: "portico-csrf",
            }
        } else {
            Cookies {
                insecure,
                session: "__Host-portico-session",
                csrf: "__Host-portico-csrf",
            }
        }
    }

    fn attributes(&self) -> &'static str {
        if self.insecure {
            "Path=/; HttpOnly; SameSite=Lax"
        } else {
            "Path=/; HttpOnly; Secure; SameSite=Lax"
        }
    }

    /// `Set-Cookie` for a new session.
    pub fn session(&self, id: &str) -> String {
        format!("{}={id}; {}", self.session, self.attributes())
    }

    /// `Set-Cookie` that removes the session cookie.
    pub fn clear_session(&self) -> String {
        format!("{}=; Max-Age=0; {}", self.session, self.attributes())
    }

    /// `Set-Cookie` for a form token.
    pub fn csrf(&self, token: &str) -> String {
        format!("{}={token}; {}", self.csrf, self.attributes())
    }

    pub fn session_id<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        cookie(headers, self.session)
    }

    pub fn csrf_token<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        cookie(headers, self.csrf)
    }
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty())
}

/// 128 random bits as hex (sessions, form tokens).
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the system's random source");
    hex::encode(bytes)
}

/// What is stored for an id: its SHA-256.
pub fn hash_id(id: &str) -> String {
    hex::encode(sha2::Sha256::digest(id.as_bytes()))
}

/// Now, as stored.
pub fn now() -> jiff::Timestamp {
    jiff::Timestamp::now()
}

pub fn text(at: jiff::Timestamp) -> String {
    crate::clock::format(at)
}

/// `at` plus `minutes`.
pub fn later(at: jiff::Timestamp, minutes: i64) -> String {
    text(at + jiff::SignedDuration::from_secs(minutes * 60))
}

/// Whether a session's factors (`pwd`, `pwd otp`, `hwk`) satisfy a role that requires a
/// second factor: a TOTP code after the password, or a passkey with user verification.
pub fn two_factors(factors: &str) -> bool {
    factors.split(' ').any(|f| f == "otp" || f == "hwk")
}

/// The signed-in person of a request, when the session is valid now.
pub struct Current {
    /// The session's id hash.
    pub id_hash: String,
    pub login: std::sync::Arc<ServeLogin>,
    pub account: std::sync::Arc<super::Account>,
    /// The factors the session passed: `pwd`, or `pwd otp`.
    pub factors: String,
    /// When the password was proved.
    pub auth_time: String,
}

/// The request's session as stored (by the hash of its cookie's id), if there is one.
async fn stored(
    app: &App,
    headers: &HeaderMap,
) -> Result<Option<(String, crate::store::serve::SessionRow)>, StoreError> {
    let Some(id) = app.cookies.session_id(headers) else {
        return Ok(None);
    };
    let id_hash = hash_id(id);
    Ok(app.store.session(&id_hash).await?.map(|s| (id_hash, s)))
}

/// How long a session and its login, once read, answer checks on this instance without the
/// database (DESIGN §10.4: a revoke applies on the next request, within a second).
const FRESH: std::time::Duration = std::time::Duration::from_secs(1);

/// Sessions read in the last second, by id hash: the forward-auth hot path reads each at most
/// once a second. Several instances each keep their own; none keeps an entry longer than
/// [`FRESH`]. Entries in use are read again together by [`SessionCache::refresh`], a batch
/// every [`REFRESH_EVERY`], not one read per session.
#[derive(Default)]
pub struct SessionCache(std::sync::Mutex<CacheInner>);

#[derive(Default)]
struct CacheInner {
    entries: std::collections::HashMap<String, Cached>,
    /// Entries in use that are due to be read again.
    due: Vec<String>,
    /// Sessions used since their last-seen time was last written, and the earliest such use.
    seen: Vec<String>,
    seen_at: Option<String>,
}

#[derive(Clone)]
struct Cached {
    read_at: std::time::Instant,
    /// A background read of this session is under way.
    refreshing: bool,
    session: std::sync::Arc<crate::store::serve::SessionRow>,
    login: std::sync::Arc<ServeLogin>,
}

/// Past this age a used entry is read again in the background, so a session in steady use
/// is almost never read while a check waits (and never used older than [`FRESH`]).
const REFRESH_AFTER: std::time::Duration = std::time::Duration::from_millis(600);

/// How often the entries due are read again, together: often enough that each batch is
/// small (a batch read and decoded at once holds up the checks waiting behind it).
pub const REFRESH_EVERY: std::time::Duration = std::time::Duration::from_millis(25);

/// Entries kept at most (a flood of made-up cookies cannot grow it without bound).
const CACHE_LIMIT: usize = 100_000;

impl Cached {
    fn new(session: crate::store::serve::SessionRow, login: ServeLogin) -> Cached {
        Cached {
            read_at: std::time::Instant::now(),
            refreshing: false,
            session: std::sync::Arc::new(session),
            login: std::sync::Arc::new(login),
        }
    }
}

impl SessionCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The entry when it is younger than [`FRESH`]; one past [`REFRESH_AFTER`] is marked due
    /// to be read again in the background.
    fn get(&self, id_hash: &str) -> Option<Cached> {
        let mut inner = self.lock();
        let entry = inner.entries.get_mut(id_hash)?;
        let age = entry.read_at.elapsed();
        if age >= FRESH {
            return None;
        }
        let found = entry.clone();
        if age >= REFRESH_AFTER && !entry.refreshing {
            entry.refreshing = true;
            inner.due.push(id_hash.to_string());
        }
        Some(found)
    }

    fn put(&self, id_hash: &str, entry: Cached) {
        let mut inner = self.lock();
        if inner.entries.len() >= CACHE_LIMIT {
            inner.entries.retain(|_, c| c.read_at.elapsed() < FRESH);
            if inner.entries.len() >= CACHE_LIMIT {
                inner.entries.clear();
            }
        }
        inner.entries.insert(id_hash.to_string(), entry);
    }

    /// Notes a session used at `at` (its last-seen time is written with the next batch).
    fn seen(&self, id_hash: &str, at: &str) {
        let mut inner = self.lock();
        inner.seen.push(id_hash.to_string());
        if inner
            .seen_at
            .as_deref()
            .is_none_or(|earliest| at < earliest)
        {
            inner.seen_at = Some(at.to_string());
        }
    }

    /// Writes the sessions used since the last batch as seen, all at the earliest of their
    /// times (so an idle limit is never counted from later than the real use).
    ///
    /// # Errors
    /// Database errors.
    pub async fn write_seen(
        &self,
        store: &crate::store::serve::ServeStore,
    ) -> Result<(), StoreError> {
        let (seen, at) = {
            let mut inner = self.lock();
            (std::mem::take(&mut inner.seen), inner.seen_at.take())
        };
        let Some(at) = at else { return Ok(()) };
        for batch in seen.chunks(crate::store::serve::SESSIONS_AT_ONCE) {
            let ids: Vec<&str> = batch.iter().map(String::as_str).collect();
            store.touch(&ids, &at).await?;
        }
        Ok(())
    }

    /// Forgets a session this instance ended or renamed.
    pub fn forget(&self, id_hash: &str) {
        self.lock().entries.remove(id_hash);
    }

    /// Reads the entries due again, in batches, and replaces them; a session gone from the
    /// database is forgotten, and one forgotten meanwhile (signed out) is not brought back.
    ///
    /// # Errors
    /// Database errors (the entries then age out and the next check reads its own).
    pub async fn refresh(&self, store: &crate::store::serve::ServeStore) -> Result<(), StoreError> {
        let due = std::mem::take(&mut self.lock().due);
        for batch in due.chunks(crate::store::serve::SESSIONS_AT_ONCE) {
            let ids: Vec<&str> = batch.iter().map(String::as_str).collect();
            let found = store.sessions_with_logins(&ids).await;
            let mut inner = self.lock();
            let mut found: std::collections::HashMap<String, _> = match found {
                Ok(found) => found.into_iter().map(|(id, s, l)| (id, (s, l))).collect(),
                Err(e) => {
                    for id in batch {
                        if let Some(entry) = inner.entries.get_mut(id) {
                            entry.refreshing = false;
                        }
                    }
                    return Err(e);
                }
            };
            for id in batch {
                let Some(entry) = inner.entries.get_mut(id) else {
                    continue;
                };
                match found.remove(id) {
                    Some((session, login)) => *entry = Cached::new(session, login),
                    None => {
                        inner.entries.remove(id);
                    }
                }
            }
        }
        Ok(())
    }
}

/// Every [`REFRESH_EVERY`] until the server stops: writes the last-seen times of sessions in
/// use ([`SessionCache::write_seen`]), reads those due again ([`SessionCache::refresh`]) and
/// the account's settings ([`App::refresh_account`]).
pub fn spawn_refresher(app: std::sync::Arc<App>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(REFRESH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = app.sessions.write_seen(&app.store).await {
                eprintln!("error: keeping sessions: {e}");
            }
            if let Err(e) = app.sessions.refresh(&app.store).await {
                eprintln!("error: reading sessions: {e}");
            }
            if let Err(e) = app.refresh_account().await {
                eprintln!("error: reading the account's settings: {e}");
            }
        }
    })
}

/// The request's valid session: it exists, is within its idle and absolute limits, and the
/// sign-in decision lets its login in now on this website. A session past a limit is ended.
/// Read from the database at most once a second per session ([`SessionCache`]); the decision
/// is made again on every call.
///
/// # Errors
/// Database errors.
pub async fn current(app: &App, headers: &HeaderMap) -> Result<Option<Current>, StoreError> {
    let Some(id) = app.cookies.session_id(headers) else {
        return Ok(None);
    };
    let id_hash = hash_id(id);
    let Some(cached) = cached_or_read(app, &id_hash).await? else {
        return Ok(None);
    };
    let cached_at = cached.read_at;
    let (session, login) = (cached.session, cached.login);
    let account = app.account().await?;
    let at = now();
    let now_text = text(at);
    let idle = account
        .login_policy
        .as_ref()
        .map_or(60, |p| i64::from(p.session_timeout_minutes));
    let idle_ends = session
        .last_seen_at
        .parse::<jiff::Timestamp>()
        .map(|seen| later(seen, idle))
        .unwrap_or_default();
    if idle_ends <= now_text || session.expires_at <= now_text {
        app.sessions.forget(&id_hash);
        app.end_session(&id_hash).await?;
        return Ok(None);
    }
    let website = website_of(&account, headers);
    let decision = crate::signin::decide(
        &account,
        &login.login,
        Some(&login.runtime),
        crate::signin::Site::Request(website.as_deref()),
        &now_text,
    );
    // A role that requires a second factor (also one that began to after this session
    // started) needs a session that passed it.
    if !decision.may_enter() || (decision.second_factor && !two_factors(&session.factors)) {
        return Ok(None);
    }
    let (factors, auth_time) = (session.factors.clone(), session.created_at.clone());
    let due = session
        .last_seen_at
        .parse::<jiff::Timestamp>()
        .is_ok_and(|seen| (at - seen).as_secs() >= TOUCH_AFTER_SECONDS);
    if due {
        let used = Cached {
            read_at: cached_at,
            refreshing: false,
            session,
            login: login.clone(),
        };
        note_use(app, &id_hash, used, &now_text);
    }
    Ok(Some(Current {
        id_hash,
        login,
        account,
        factors,
        auth_time,
    }))
}

/// The session with this id hash and its login: the cached copy, else read (and cached).
async fn cached_or_read(app: &App, id_hash: &str) -> Result<Option<Cached>, StoreError> {
    if let Some(cached) = app.sessions.get(id_hash) {
        return Ok(Some(cached));
    }
    let Some((session, login)) = app.store.session_with_login(id_hash).await? else {
        return Ok(None);
    };
    let cached = Cached::new(session, login);
    app.sessions.put(id_hash, cached.clone());
    Ok(Some(cached))
}

/// Notes a session's use now: written with the next batch, not before the answer; the
/// cached copy is marked used now so the next checks do not note it again.
fn note_use(app: &App, id_hash: &str, mut used: Cached, now_text: &str) {
    let mut seen = (*used.session).clone();
    seen.last_seen_at = now_text.to_string();
    used.session = std::sync::Arc::new(seen);
    app.sessions.put(id_hash, used);
    app.sessions.seen(id_hash, now_text);
}

/// The request's session that has passed the password and waits for the second factor:
/// its id hash and login, when it is within its limits and the login may still get in.
///
/// # Errors
/// Database errors.
pub async fn pending(
    app: &App,
    headers: &HeaderMap,
) -> Result<Option<(String, ServeLogin)>, StoreError> {
    let Some((id_hash, session)) = stored(app, headers).await? else {
        return Ok(None);
    };
    let now_text = text(now());
    // Ten minutes to pass the second factor.
    let started = session
        .last_seen_at
        .parse::<jiff::Timestamp>()
        .map(|seen| later(seen, 10))
        .unwrap_or_default();
    if two_factors(&session.factors) || started <= now_text || session.expires_at <= now_text {
        return Ok(None);
    }
    let Some(login) = app
        .store
        .login_by_key(&session.customer_id, &session.contact)
        .await?
    else {
        return Ok(None);
    };
    let account = app.account().await?;
    let website = website_of(&account, headers);
    let mut runtime = login.runtime.clone();
    runtime.locked_until = None;
    let decision = crate::signin::decide(
        &account,
        &login.login,
        Some(&runtime),
        crate::signin::Site::Request(website.as_deref()),
        &now_text,
    );
    Ok((decision.may_enter() && decision.second_factor).then_some((id_hash, login)))
}

/// The website a request is for: the one whose URL has the request's host.
pub fn website_of(account: &super::Account, headers: &HeaderMap) -> Option<String> {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())?;
    account.website_at(host).map(str::to_string)
}

/// The site's display name for a request: its website's name, else "Customer Center".
pub fn site_name(account: &super::Account, headers: &HeaderMap) -> String {
    website_of(account, headers)
        .and_then(|id| account.websites.get(&id).map(|w| w.name.clone()))
        .unwrap_or_else(|| "Customer Center".into())
}
