//! Email delivery over SMTP (lettre): TLS from the first byte (`smtps://`) or STARTTLS
//! required (`smtp://`); plain text only to a loopback address (`?tls=none`). Connections are
//! pooled, so a run reuses them.

use lettre::message::{Mailbox, MultiPart, SinglePart, header::ContentType};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{Attempt, DeliveryOptions, NotificationMessage};
use crate::message::endpoint::{Security, smtp_endpoint};
use crate::state::{NotificationSettings, SmtpSettings};

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
        let at = smtp_endpoint(&server.url)?;
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
