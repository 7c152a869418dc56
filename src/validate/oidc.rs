//! The `oidc_clients:` section's rules: exact redirect URIs (https, or http on a loopback
//! host), known scopes and website, and exactly one way to authenticate.

use std::collections::BTreeMap;

use super::{Context, Desired};
use crate::manifest::diagnostic::{Diagnostic, Site};
use crate::manifest::load::duplicate;
use crate::manifest::oidc::{OidcClient, SCOPES};
use crate::state::OidcClientState;

/// The shortest client secret taken from `env` or `file`: 32 characters, about 190 bits
/// when random (OAuth 2.0 Security BCP: secrets with enough entropy; ASVS 5 V10).
pub const MIN_CLIENT_SECRET: usize = 32;

/// The clients the manifests declare; their secrets' sources go into `desired.passwords`.
pub(super) fn clients(
    cx: &mut Context<'_>,
    desired: &mut Desired,
) -> BTreeMap<String, OidcClientState> {
    let mut clients = BTreeMap::new();
    let mut first_site: BTreeMap<&str, &Site> = BTreeMap::new();
    let websites = cx.website_ids(desired);
    for declared in cx.set.oidc_clients.iter().flatten() {
        let (client, site) = (&declared.value, &declared.site);
        if let Some(first) = first_site.insert(&client.id, site) {
            let d = duplicate(
                &format!("oidc client `{}`", client.id),
                &cx.set.sources,
                &first.key("id"),
                site.key("id"),
            );
            cx.diagnostics.push(d);
            continue;
        }
        cx.non_empty(site, "id", &client.id);
        cx.non_empty(site, "name", &client.name);
        if client
            .id
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            cx.error(
                &site.key("id"),
                "a client id has no spaces or control characters",
            );
        }
        if client.redirect_uris.is_empty() {
            cx.error(&site.key("redirect_uris"), "a client needs at least one redirect URI")
                .hint = Some("the address its OpenID Connect library receives the code at, for example `https://billing.example.com/oidc/callback`".into());
        }
        uris(cx, &site.key("redirect_uris"), &client.redirect_uris);
        uris(
            cx,
            &site.key("post_logout_redirect_uris"),
            &client.post_logout_redirect_uris,
        );
        if let (Some(website), Some(known)) = (&client.website, &websites)
            && !known.contains(website)
        {
            let d = Diagnostic::error(
                site.key("website"),
                format!("website `{website}` is not defined"),
            )
            .suggest(website, known.iter().map(String::as_str));
            cx.diagnostics.push(d);
        }
        let scopes = scopes(cx, site, client);
        let secret = secret(cx, site, client, desired);
        clients.insert(
            client.id.clone(),
            OidcClientState {
                name: client.name.clone(),
                redirect_uris: client.redirect_uris.clone(),
                post_logout_redirect_uris: client.post_logout_redirect_uris.clone(),
                website: client.website.clone(),
                scopes,
                secret,
            },
        );
    }
    clients
}

/// Each URI absolute, without a fragment, `https` (or `http` on a loopback host), listed
/// once.
fn uris(cx: &mut Context<'_>, site: &Site, given: &[String]) {
    for (i, uri) in given.iter().enumerate() {
        let here = site.index(i);
        if given[..i].contains(uri) {
            cx.error(&here, format!("`{uri}` is listed twice"));
            continue;
        }
        if let Err(why) = redirect_uri_problem(uri) {
            cx.error(&here, format!("`{uri}`: {why}"));
        }
    }
}

/// Why a redirect URI is refused, if it is. Redirect URIs are compared exactly (OAuth 2.0
/// Security BCP §4.1.3), so they must be written as the client sends them.
pub fn redirect_uri_problem(uri: &str) -> Result<(), &'static str> {
    let parsed = url::Url::parse(uri).map_err(|_| "not an absolute URL")?;
    if parsed.fragment().is_some() {
        return Err("a redirect URI has no `#fragment`");
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("a redirect URI carries no user name or password");
    }
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&parsed) => Ok(()),
        "http" => Err("use https:// (plain http:// only on 127.0.0.1, [::1] or localhost)"),
        _ => Err("use https:// (or http:// on a loopback host)"),
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// The allowed scopes, sorted; `openid` is required.
fn scopes(cx: &mut Context<'_>, site: &Site, client: &OidcClient) -> Vec<String> {
    let Some(given) = &client.scopes else {
        let mut all: Vec<String> = SCOPES.iter().map(|s| s.to_string()).collect();
        all.sort();
        return all;
    };
    for (i, scope) in given.iter().enumerate() {
        if !SCOPES.contains(&scope.as_str()) {
            let d = Diagnostic::error(
                site.key("scopes").index(i),
                format!("unknown scope `{scope}`"),
            )
            .suggest(scope, SCOPES);
            cx.diagnostics.push(d);
        }
    }
    if !given.iter().any(|s| s == "openid") {
        cx.error(&site.key("scopes"), "the scopes must include `openid`");
    }
    let mut scopes = given.clone();
    scopes.sort();
    scopes.dedup();
    scopes
}

/// Exactly one of `secret:` and `public: true`; a secret's source is checked and recorded.
fn secret(
    cx: &mut Context<'_>,
    site: &Site,
    client: &OidcClient,
    desired: &mut Desired,
) -> Option<u32> {
    match (&client.secret, client.public) {
        (None, false) => {
            cx.error(site, format!("oidc client `{}` needs `secret:` or `public: true`", client.id))
                .hint = Some("a server-side application keeps a secret (`secret: {env: BILLING_OIDC_SECRET}`); a single-page or mobile app is `public: true` and relies on PKCE".into());
            None
        }
        (Some(_), true) => {
            cx.error(
                &site.key("public"),
                "a public client has no secret: remove `secret:` or `public: true`",
            );
            None
        }
        (None, true) => None,
        (Some(source), false) => {
            let rule = (
                "client secret",
                MIN_CLIENT_SECRET,
                "the client-secret minimum",
            );
            let found = super::logins::check_secret(cx, source, || site.key("secret"), rule);
            if let Some(found) = found {
                desired.passwords.insert_client(&client.id, found);
            }
            Some(source.reset.unwrap_or(0))
        }
    }
}
