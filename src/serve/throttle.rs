//! Per-address throttling (DESIGN §10.2): wrong passwords, wrong codes and reset requests are
//! counted per client address per hour, generously by default because a whole office may share
//! one address, in the database so every instance shares the count. The client address is
//! the peer's, or the one a configured trusted proxy forwarded (`X-Forwarded-For`).

use std::net::IpAddr;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minijinja::context;

use super::App;
use super::pages::page;
use crate::store::StoreError;

/// The client address of a request, as events and throttling see it.
#[derive(Clone, Debug)]
pub struct Client(pub String);

/// How throttling works.
#[derive(Clone, Debug)]
pub struct Throttle {
    /// Failures per address per hour before the address is refused; 0 turns it off.
    pub per_hour: u32,
    /// Proxies whose `X-Forwarded-For` is believed (addresses or networks).
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            per_hour: 100,
            trusted_proxies: Vec::new(),
        }
    }
}

/// The client's address: the peer's, unless the peer is a trusted proxy; then the nearest
/// address in `X-Forwarded-For` that is not one (a client can prepend anything to the
/// header, but not what the trusted proxies appended after it).
pub fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|hop| hop.trim().parse().ok())
        .collect();
    hops.iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or(hops.first())
        .copied()
        .unwrap_or(peer)
}

/// The hour `at` is in, as stored: `YYYY-MM-DDTHH:00:00Z`.
fn window(at: jiff::Timestamp) -> String {
    let text = crate::clock::format(at);
    format!("{}:00:00Z", &text[..13])
}

/// What throttling made of an attempt it counts up front.
pub enum Claimed {
    /// Throttling is off.
    Off,
    /// Counted in this window (refund it when the password turns out right).
    Counted(String),
    /// The address has used up its allowance this hour.
    Refused,
}

impl Claimed {
    /// The window to refund a right password in.
    pub fn refund(&self) -> Option<&str> {
        match self {
            Claimed::Counted(window) => Some(window),
            _ => None,
        }
    }
}

/// Counts an attempt from `address` before it is checked (atomically, only below the limit).
///
/// # Errors
/// Database errors.
pub async fn claim(app: &App, address: &str, at: jiff::Timestamp) -> Result<Claimed, StoreError> {
    if app.throttle.per_hour == 0 {
        return Ok(Claimed::Off);
    }
    let window = window(at);
    let counted = app
        .store
        .claim_address(address, &window, i64::from(app.throttle.per_hour))
        .await?;
    Ok(if counted {
        Claimed::Counted(window)
    } else {
        Claimed::Refused
    })
}

/// Counts one failure from `address`.
///
/// # Errors
/// Database errors.
pub async fn count(app: &App, address: &str, at: jiff::Timestamp) -> Result<(), StoreError> {
    if app.throttle.per_hour == 0 {
        return Ok(());
    }
    app.store.count_failure(address, &window(at)).await
}

/// The answer to a throttled address: 429, and when to come back.
pub fn too_many(site: &str, at: jiff::Timestamp) -> Response {
    let seconds = 3600 - at.as_second().rem_euclid(3600);
    let minutes = (seconds + 59) / 60;
    let mut response = page(
        StatusCode::TOO_MANY_REQUESTS,
        "throttled.html",
        context! { title => "Too many attempts", site, minutes },
    );
    if let Ok(value) = seconds.to_string().parse() {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(forwarded: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", forwarded.parse().unwrap());
        h
    }

    #[test]
    fn a_forwarded_address_is_believed_only_from_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let trusted = vec!["10.0.0.0/24".parse().unwrap()];
        let spoofed = headers("198.51.100.7, 203.0.113.5");
        // Not a trusted peer: its header means nothing.
        let stranger: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(client_address(stranger, &spoofed, &trusted), stranger);
        // Through the proxy: the address the proxy saw (the rightmost untrusted one), not
        // what the client wrote before it.
        assert_eq!(
            client_address(proxy, &spoofed, &trusted).to_string(),
            "203.0.113.5"
        );
        // Two trusted hops.
        let chain = headers("203.0.113.5, 10.0.0.9");
        assert_eq!(
            client_address(proxy, &chain, &trusted).to_string(),
            "203.0.113.5"
        );
        // No header: the proxy itself.
        assert_eq!(client_address(proxy, &HeaderMap::new(), &trusted), proxy);
        // Nothing trusted: never the header.
        assert_eq!(client_address(proxy, &spoofed, &[]), proxy);
    }

    #[test]
    fn the_window_is_the_hour() {
        let at: jiff::Timestamp = "2026-12-01T10:59:59Z".parse().unwrap();
        assert_eq!(window(at), "2026-12-01T10:00:00Z");
    }
}
