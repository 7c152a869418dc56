//! `portico serve` (DESIGN §10): the customer center's front door, enforcing exactly what
//! apply wrote. Every route is listed in [`router`]; one module per flow; every decision comes
//! from [`crate::signin::decide`]; all state lives in the database ([`ServeStore`]), so
//! several instances share one PostgreSQL.

mod flows;
mod forgot;
mod forward;
mod hashing;
mod log;
pub(crate) mod oidc;
mod outbox;
mod pages;
mod passkeys;
mod profile;
pub(crate) mod session;
mod throttle;
mod two_factor;

pub use throttle::Throttle;
pub use two_factor::SecretKey;

use throttle::Client;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::store::serve::ServeStore;

/// How `serve` runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// The database.
    pub database: String,
    /// Where to listen.
    pub listen: SocketAddr,
    /// Plain HTTP for local trials: cookies without `Secure` and the `__Host-` prefix.
    /// Refused on a non-loopback address.
    pub insecure_cookies: bool,
    /// The key for secrets at rest (TOTP seeds), 32 bytes in base64.
    pub secret_key: String,
    /// Per-address throttling and the proxies trusted to forward the client's address.
    pub throttle: Throttle,
    /// Deliver the outbox (new-access and reset messages) from this server.
    pub deliver: bool,
    /// Days sign-in events are kept.
    pub events_days: u32,
}

/// Why `serve` could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// A setting is not allowed.
    #[error("{0}")]
    Refused(String),
    /// The database.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The socket.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Shared by every request.
pub(crate) struct App {
    pub store: ServeStore,
    pub database: String,
    pub cookies: session::Cookies,
    /// The bounded hashing pool: argon2 takes ~19 MiB and a core's time each, so a flood
    /// queues here (and is refused past a short queue) instead of exhausting memory.
    pub hashing: hashing::Pool,
    /// An argon2id hash of nothing, checked for unknown emails so they take as long.
    pub dummy_hash: String,
    /// Seals TOTP seeds.
    pub secret_key: SecretKey,
    /// Per-address throttling.
    pub throttle: Throttle,
    /// Wakes the outbox delivery (a reset was queued).
    pub outbox: tokio::sync::Notify,
    /// Sessions read in the last second.
    pub sessions: Arc<session::SessionCache>,
    /// The access log's writer.
    pub log: log::AccessLog,
    /// The OpenID Connect provider's keys and proved client secrets.
    pub oidc: oidc::Provider,
    account: std::sync::RwLock<(Instant, Arc<Account>)>,
}

/// The account's settings as the server uses them: the state read from the database, and
/// each website's host (`name` or `name:port`, lower case) found once, not per request.
pub struct Account {
    state: crate::state::State,
    hosts: std::collections::HashMap<String, String>,
}

impl Account {
    fn new(state: crate::state::State) -> Account {
        let hosts = state
            .websites
            .iter()
            .filter_map(|(id, w)| {
                let url = url::Url::parse(&w.url).ok()?;
                let host = url.host_str()?.to_ascii_lowercase();
                let host = match url.port() {
                    Some(port) => format!("{host}:{port}"),
                    None => host,
                };
                Some((host, id.to_string()))
            })
            .collect();
        Account { state, hosts }
    }

    /// The website served at this `Host` header's value, if any.
    pub fn website_at(&self, host: &str) -> Option<&str> {
        if let Some(id) = self.hosts.get(host) {
            return Some(id);
        }
        self.hosts
            .get(&host.to_ascii_lowercase())
            .map(String::as_str)
    }
}

impl std::ops::Deref for Account {
    type Target = crate::state::State;
    fn deref(&self) -> &crate::state::State {
        &self.state
    }
}

/// How long the account's settings (features, roles, websites, policy) are reused: a revoke
/// of a whole role or feature applies within this; a login's own access is read on every
/// request.
const ACCOUNT_TTL: Duration = Duration::from_secs(1);

impl App {
    /// Ends one session, here and in the database.
    ///
    /// # Errors
    /// Database errors.
    pub async fn end_session(&self, id_hash: &str) -> Result<(), crate::store::StoreError> {
        self.sessions.forget(id_hash);
        self.store.end_session(id_hash).await
    }

    /// The account's settings, never older than [`ACCOUNT_TTL`]: kept fresh in the
    /// background ([`App::refresh_account`]), read here only when that has fallen behind.
    pub async fn account(&self) -> Result<Arc<Account>, crate::store::StoreError> {
        {
            let cached = self.account.read().expect("the account cache");
            if cached.0.elapsed() < ACCOUNT_TTL {
                return Ok(cached.1.clone());
            }
        }
        self.read_account().await
    }

    async fn read_account(&self) -> Result<Arc<Account>, crate::store::StoreError> {
        let started = Instant::now();
        let fresh = Arc::new(Account::new(self.store.account().await?));
        *self.account.write().expect("the account cache") = (started, fresh.clone());
        Ok(fresh)
    }

    /// Reads the account's settings again once they are half their allowed age, so requests
    /// seldom wait for it.
    ///
    /// # Errors
    /// Database errors.
    pub async fn refresh_account(&self) -> Result<(), crate::store::StoreError> {
        let age = self.account.read().expect("the account cache").0.elapsed();
        if age >= ACCOUNT_TTL / 2 {
            self.read_account().await?;
        }
        Ok(())
    }
}

/// Every route, in one place.
pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/assets/portico.css", get(pages::css))
        .route("/", get(forward::home))
        .route("/login", get(flows::login_page).post(flows::login))
        .route("/logout", post(flows::logout))
        .route(
            "/set-password",
            get(flows::set_password_page).post(flows::set_password),
        )
        .route(
            "/forgot-password",
            get(forgot::page_for).post(forgot::submit),
        )
        .route(
            "/two-factor",
            get(two_factor::page_for).post(two_factor::submit),
        )
        .route("/profile", get(profile::page_for))
        .route("/profile/password", post(profile::change_password))
        .route("/profile/two-factor", post(profile::two_factor))
        .route("/profile/recovery-codes", post(profile::recovery_codes))
        .route("/auth/request", get(forward::auth_request))
        .route("/auth/forward", get(forward::auth_forward))
        .route("/assets/passkey.js", get(pages::passkey_js))
        .route("/passkeys/register/start", post(passkeys::register_start))
        .route("/passkeys/register/finish", post(passkeys::register_finish))
        .route("/passkeys/login/start", post(passkeys::login_start))
        .route("/passkeys/login/finish", post(passkeys::login_finish))
        .route("/oidc/authorize", get(oidc::authorize))
        .route("/oidc/logout", get(oidc::logout_page).post(oidc::logout))
        .layer(tower_http::csrf::CsrfLayer::new())
        .merge(provider_api())
        .layer(middleware::from_fn_with_state(app.clone(), headers_and_log))
        .with_state(app)
}

/// The provider's endpoints that applications call from their servers or from a page's
/// script: no cookie is read there, so any origin may call them (CORS), and the form check
/// (which refuses cross-origin posts) does not apply.
fn provider_api() -> Router<Arc<App>> {
    use axum::http::{Method, header::AUTHORIZATION, header::CONTENT_TYPE};
    let cors = tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([AUTHORIZATION, CONTENT_TYPE]);
    Router::new()
        .route("/.well-known/openid-configuration", get(oidc::discovery))
        .route("/oidc/jwks", get(oidc::jwks))
        .route("/oidc/token", post(oidc::token))
        .route("/oidc/userinfo", get(oidc::userinfo).post(oidc::userinfo))
        .layer(cors)
}

async fn ready(State(app): State<Arc<App>>) -> Response {
    if app.store.ready().await {
        "ready".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
    }
}

/// Security headers on every answer, and one access-log line per request on standard error:
/// client address, method, path (never the query, which can hold a set-password token),
/// status, time. The client address is put where handlers find it ([`Client`]).
async fn headers_and_log(
    State(app): State<Arc<App>>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    let client = throttle::client_address(peer, request.headers(), &app.throttle.trusted_proxies)
        .to_string();
    request.extensions_mut().insert(Client(client.clone()));
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name: header::HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    // A form whose answer redirects on to an application (signing in for it, signing out
    // of it) needs that application's origin in `form-action`: browsers check the whole
    // redirect chain of a form's submission against it.
    let to_clients = if FORMS_TO_CLIENTS.contains(&path.as_str()) {
        app.account().await.ok().map(|a| client_origins(&a))
    } else {
        None
    };
    let csp = format!(
        "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'{}; frame-ancestors 'none'; base-uri 'none'",
        to_clients.unwrap_or_default()
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_str(&csp).unwrap_or(HeaderValue::from_static("default-src 'none'")),
    );
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    // Not `no-referrer`: browsers then send `Origin: null` on same-origin posts.
    set(h, header::REFERRER_POLICY, "same-origin");
    set(h, header::CACHE_CONTROL, "no-store");
    if !app.cookies.insecure {
        set(
            h,
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        );
    }
    app.log.line(format_args!(
        "{client} {method} {path} {} {}ms",
        response.status().as_u16(),
        started.elapsed().as_millis()
    ));
    response
}

/// The pages whose forms may end in a redirect to an OpenID Connect client.
const FORMS_TO_CLIENTS: [&str; 3] = ["/login", "/two-factor", "/oidc/logout"];

/// The origins of every client's redirect and post-logout URIs, as CSP sources (each with
/// a leading space).
fn client_origins(account: &Account) -> String {
    let mut origins: Vec<String> = account
        .oidc_clients
        .values()
        .flat_map(|c| c.redirect_uris.iter().chain(&c.post_logout_redirect_uris))
        .filter_map(|uri| url::Url::parse(uri).ok())
        .map(|url| url.origin().ascii_serialization())
        .filter(|origin| origin != "null")
        .collect();
    origins.sort();
    origins.dedup();
    origins.iter().map(|o| format!(" {o}")).collect()
}

/// Runs the login service until SIGINT or SIGTERM, then finishes the requests in flight.
///
/// # Errors
/// A refused setting, an unreachable database, or a socket that cannot be bound.
pub async fn serve(options: Options) -> Result<(), ServeError> {
    if options.insecure_cookies && !options.listen.ip().is_loopback() {
        return Err(ServeError::Refused(format!(
            "--insecure-cookies is for plain HTTP on this machine only: refused on {} (listen on 127.0.0.1, or put a TLS proxy in front and drop the flag)",
            options.listen
        )));
    }
    let secret_key = SecretKey::from_base64(&options.secret_key).map_err(ServeError::Refused)?;
    let cores = crate::parallel::cores();
    let store = ServeStore::open(&options.database, (cores as u32 * 4).max(8)).await?;
    let dummy_hash = crate::passwords::hash("portico-dummy-password")
        .map_err(|_| ServeError::Refused("the system's random source failed".into()))?;
    let app = Arc::new(App {
        account: std::sync::RwLock::new((
            Instant::now(),
            Arc::new(Account::new(store.account().await?)),
        )),
        store,
        database: options.database.clone(),
        cookies: session::Cookies::new(options.insecure_cookies),
        hashing: hashing::Pool::start(cores),
        dummy_hash,
        secret_key,
        throttle: options.throttle.clone(),
        outbox: tokio::sync::Notify::new(),
        sessions: Arc::default(),
        log: log::AccessLog::start(),
        oidc: oidc::Provider::default(),
    });
    let background = outbox::spawn(app.clone(), &options);
    let refresher = session::spawn_refresher(app.clone());
    let kept = app.clone();
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|source| ServeError::Listen {
            addr: options.listen,
            source,
        })?;
    let addr = listener.local_addr().unwrap_or(options.listen);
    eprintln!("portico serve: listening on http://{addr} (behind a TLS proxy in production)");
    axum::serve(
        listener,
        router(app).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown())
    .await
    .map_err(|source| ServeError::Listen {
        addr: options.listen,
        source,
    })?;
    background.abort();
    refresher.abort();
    // Sessions used in the last moments keep their last-seen time.
    if let Err(e) = kept.sessions.write_seen(&kept.store).await {
        eprintln!("error: keeping sessions: {e}");
    }
    kept.log.finish();
    eprintln!("portico serve: stopped");
    Ok(())
}

async fn shutdown() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let terminate = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = interrupt => {},
            _ = terminate => {},
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
