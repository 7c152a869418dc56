//! Email delivery over SMTP (lettre): TLS from the first byte (`smtps://`) or STARTTLS
//! required (`smtp://`); plain text only to a loopback address (`?tls=none`). Connections are
//! pooled, so a run reuses them.

use std::net::IpAddr;

use lettre::message::{Mailbox, MultiPart, SinglePart, header::ContentType};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{Attempt, DeliveryOptions, NotificationMessage};
use crate::state::{NotificationSettings, SmtpSettings};

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
pub fn endpoint(url: &str) -> Result<Endpoint, String> {
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

/// A pooled SMTP transport with the sender addresses.
#[derive(Clone)]
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    reply_to: Option<Mailbox>,
}

impl Mailer {
    /// # Errors
    /// A setting that cannot work (checked at plan time too).
    pub fn new(
        settings: &NotificationSettings,
        server: &SmtpSettings,
        password: Option<String>,
        opts: &DeliveryOptions,
    ) -> Result<Mailer, String> {
        let at = endpoint(&server.url)?;
        let builder = match at.security {
            Security::Wrapper => AsyncSmtpTransport::<Tokio1Executor>::relay(&at.host),
            Security::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&at.host),
            Security::Plain => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(
                &at.host,
            )),
        }
        .map_err(|e| format!("cannot set up TLS for `{}`: {e}", at.host))?;
        let mut builder = builder
            .port(at.port)
            .timeout(Some(opts.timeout))
            .pool_config(PoolConfig::new().max_size(opts.parallel.max(1) as u32));
        if let Some(username) = &server.username {
            builder = builder.credentials(Credentials::new(
                username.clone(),
                password.unwrap_or_default(),
            ));
        }
        let mailbox = |value: &Option<String>, field: &str| {
            value
                .as_deref()
                .map(|v| {
                    v.parse::<Mailbox>()
                        .map_err(|e| format!("`notifications.{field}` `{v}`: {e}"))
                })
                .transpose()
        };
        Ok(Mailer {
            transport: builder.build(),
            from: mailbox(&settings.from, "from")?
                .ok_or("`notifications.from` is required with `smtp`")?,
            reply_to: mailbox(&settings.reply_to, "reply_to")?,
        })
    }

    /// One attempt. A 5xx reply is permanent; 4xx replies, timeouts and connection failures
    /// are worth retrying.
    pub async fn send(&self, body: &NotificationMessage) -> Attempt {
        let message = match self.message(body) {
            Ok(m) => m,
            Err(e) => return Attempt::Permanent(e),
        };
        match self.transport.send(message).await {
            Ok(_) => Attempt::Sent,
            Err(e) if e.is_permanent() => {
                Attempt::Permanent(format!("the SMTP server refused it: {e}"))
            }
            Err(e) if e.is_transient() => {
                Attempt::Retry(format!("the SMTP server deferred it: {e}"))
            }
            Err(e) if e.is_timeout() => {
                Attempt::Retry("no answer from the SMTP server in time".into())
            }
            Err(e) => Attempt::Retry(format!("SMTP failed: {e}")),
        }
    }

    fn message(&self, body: &NotificationMessage) -> Result<Message, String> {
        let to = body.email.parse().map_err(|e| {
            format!(
                "`{}` is not an address mail can be sent to: {e}",
                body.email
            )
        })?;
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(body.name.clone(), to))
            .subject(body.subject.clone())
            // The idempotency key: a receiving system can tell a retry from a new message.
            .message_id(Some(format!("<{}@portico>", body.idempotency_key)));
        if let Some(reply_to) = &self.reply_to {
            builder = builder.reply_to(reply_to.clone());
        }
        let text = SinglePart::builder()
            .header(ContentType::TEXT_PLAIN)
            .body(body.text.clone());
        let built = match &body.html {
            Some(html) => builder.multipart(
                MultiPart::alternative().singlepart(text).singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(html.clone()),
                ),
            ),
            None => builder.singlepart(text),
        };
        built.map_err(|e| format!("cannot build the email: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let e = endpoint("smtps://mail.example.com").unwrap();
        assert_eq!((e.port, e.security), (465, Security::Wrapper));
        let e = endpoint("smtp://mail.example.com").unwrap();
        assert_eq!((e.port, e.security), (587, Security::StartTls));
        let e = endpoint("smtp://127.0.0.1:2525?tls=none").unwrap();
        assert_eq!((e.port, e.security), (2525, Security::Plain));
        assert!(endpoint("smtp://[::1]:2525?tls=none").is_ok());
        assert!(endpoint("smtp://localhost:2525?tls=none").is_ok());
        for (bad, says) in [
            ("smtp://mail.example.com?tls=none", "loopback"),
            ("smtps://127.0.0.1?tls=none", "cannot use"),
            ("http://mail.example.com", "unknown scheme"),
            ("smtp://u:p@mail.example.com", "no user name or password"),
            ("smtp://mail.example.com?tls=off", "tls=off"),
            ("mail.example.com", "not a URL"),
        ] {
            let error = endpoint(bad).unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }
}
