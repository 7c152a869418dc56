//! Where messages go, checked before anything is sent: SMTP URLs, webhook URLs and mailbox
//! addresses. Pure: no connection is made here.

use std::net::IpAddr;

/// How to reach an SMTP server, from its URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub security: Security,
}

/// The connection's encryption.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// TLS from the first byte (`smtps://`, port 465).
    Wrapper,
    /// STARTTLS, refusing a server that does not offer it (`smtp://`, port 587).
    StartTls,
    /// None: loopback only (`smtp://…?tls=none`).
    Plain,
}

/// Parses and checks an SMTP URL.
///
/// # Errors
/// What is wrong with it, in words for the admin.
pub fn smtp_endpoint(url: &str) -> Result<Endpoint, String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(
            "put no user name or password in the SMTP URL: use `username` and `password: { env: … }`"
                .into(),
        );
    }
    let host = parsed
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("`{url}` has no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let mut tls_none = false;
    for (key, value) in parsed.query_pairs() {
        match (key.as_ref(), value.as_ref()) {
            ("tls", "none") => tls_none = true,
            ("tls", other) => {
                return Err(format!(
                    "unknown `tls={other}`: the only choice is `tls=none` (loopback only); `smtps://` and `smtp://` always encrypt"
                ));
            }
            (other, _) => return Err(format!("unknown URL parameter `{other}`")),
        }
    }
    let (security, default_port) = match parsed.scheme() {
        "smtps" if tls_none => return Err("`smtps://` cannot use `tls=none`".into()),
        "smtps" => (Security::Wrapper, 465),
        "smtp" if tls_none => {
            let loopback =
                host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
            if !loopback {
                return Err(format!(
                    "plain-text SMTP (`tls=none`) is refused to `{host}`: it would send set-password links unencrypted; it is allowed only to a loopback address"
                ));
            }
            (Security::Plain, 25)
        }
        "smtp" => (Security::StartTls, 587),
        other => {
            return Err(format!(
                "unknown scheme `{other}://`: use `smtps://host:465` or `smtp://host:587`"
            ));
        }
    };
    Ok(Endpoint {
        port: parsed.port().unwrap_or(default_port),
        host,
        security,
    })
}

/// Checks an address as `Name <address>` or a bare address.
///
/// # Errors
/// Why it is not one.
pub fn check_mailbox(value: &str) -> Result<(), String> {
    value
        .parse::<lettre::message::Mailbox>()
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Checks a webhook URL: `https://` (plain `http://` only to a loopback address), a host
/// that is not a link-local or unspecified address (cloud metadata services live there), a
/// valid port, and no credentials in it (user info, or a query parameter named like a
/// secret): a URL is shown in plans, stored and kept in history, so credentials belong in
/// `auth_header: { env: … }`.
///
/// # Errors
/// What is wrong, without repeating a credential.
pub fn check_webhook_url(raw: &str) -> Result<(), String> {
    let (scheme, rest) = raw.split_once("://").unwrap_or(("", raw));
    if !matches!(scheme, "https" | "http") {
        return Err(
            "the webhook URL must start with https:// (or http:// to a loopback address)".into(),
        );
    }
    if rest.starts_with('/') || rest.is_empty() {
        return Err("the URL has no host: write `https://host/path`".into());
    }
    let parsed = url::Url::parse(raw).map_err(|e| format!("not a valid URL: {e}"))?;
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("put no user name or password in the URL: it would be shown in plans and history; use `auth_header: { env: NAME }`".into());
    }
    if let Some((key, _)) = parsed.query_pairs().find(|(k, _)| secret_like(k)) {
        return Err(format!(
            "the query parameter `{key}` looks like a credential: it would be shown in plans and history; use `auth_header: {{ env: NAME }}`"
        ));
    }
    let host = parsed.host().ok_or("the URL has no host")?;
    let ip = match &host {
        url::Host::Ipv4(ip) => Some(std::net::IpAddr::V4(*ip)),
        url::Host::Ipv6(ip) => Some(std::net::IpAddr::V6(*ip)),
        url::Host::Domain(_) => None,
    };
    let loopback = match &host {
        url::Host::Domain(d) => *d == "localhost",
        _ => ip.is_some_and(|ip| ip.is_loopback()),
    };
    let link_local = ip.is_some_and(|ip| match ip {
        std::net::IpAddr::V4(v4) => v4.is_link_local() || v4.is_unspecified() || v4.is_broadcast(),
        std::net::IpAddr::V6(v6) => v6.is_unspecified() || (v6.segments()[0] & 0xffc0) == 0xfe80,
    });
    if link_local {
        return Err(format!(
            "`{host}` is a link-local or unspecified address (where cloud metadata services answer): refused"
        ));
    }
    if scheme == "http" && !loopback {
        return Err(format!(
            "plain `http://` is refused to `{host}`: it would send set-password links unencrypted; use https:// (http:// is allowed only to a loopback address)"
        ));
    }
    Ok(())
}

/// A URL query key that usually carries a credential.
fn secret_like(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "secret",
        "token",
        "key",
        "sig",
        "auth",
        "credential",
    ]
    .iter()
    .any(|word| key.contains(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let e = smtp_endpoint("smtps://mail.example.com").unwrap();
        assert_eq!((e.port, e.security), (465, Security::Wrapper));
        let e = smtp_endpoint("smtp://mail.example.com").unwrap();
        assert_eq!((e.port, e.security), (587, Security::StartTls));
        let e = smtp_endpoint("smtp://127.0.0.1:2525?tls=none").unwrap();
        assert_eq!((e.port, e.security), (2525, Security::Plain));
        assert!(smtp_endpoint("smtp://[::1]:2525?tls=none").is_ok());
        assert!(smtp_endpoint("smtp://localhost:2525?tls=none").is_ok());
        for (bad, says) in [
            ("smtp://mail.example.com?tls=none", "loopback"),
            ("smtps://127.0.0.1?tls=none", "cannot use"),
            ("http://mail.example.com", "unknown scheme"),
            ("smtp://u:p@mail.example.com", "no user name or password"),
            ("smtp://mail.example.com?tls=off", "tls=off"),
            ("mail.example.com", "not a URL"),
        ] {
            let error = smtp_endpoint(bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn webhook_urls_are_checked_like_smtp_urls() {
        for good in [
            "https://mail-api.example.com/v1/portico",
            "http://127.0.0.1:8025/hook",
            "http://localhost/hook",
            "http://[::1]:9/x",
            "https://example.com/?customer=1",
        ] {
            assert_eq!(check_webhook_url(good), Ok(()), "{good}");
        }
        for bad in [
            "http://169.254.169.254/latest/meta-data",
            "https://169.254.169.254/",
            "https://[fe80::1]/",
            "https://0.0.0.0/",
            "http:///nohost",
            "https://example.com:99999/",
            "http://example.com/hook",
            "ftp://example.com/",
            "https://user:s3cret@example.com/",
            "https://example.com/hook?api_key=s3cret",
            "https://example.com/hook?access_token=s3cret",
        ] {
            let error = check_webhook_url(bad).expect_err(bad);
            assert!(!error.contains("s3cret"), "{error}");
        }
    }
}
