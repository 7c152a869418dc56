//! Email delivery over SMTP (lettre's protocol client): TLS from the first byte (`smtps://`)
//! or STARTTLS required (`smtp://`); plain text only to a loopback address (`?tls=none`).
//!
//! Connections are portico's own, kept between messages of a run: lettre 0.11 leaves Nagle's
//! algorithm on, and it writes a message's body and its closing `.` separately, so every
//! message waited about 40 ms for the server's delayed acknowledgement (15 messages a second
//! a connection on loopback). Here each socket has `TCP_NODELAY`, and a connection is reused
//! without lettre's NOOP round trip before each message.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use lettre::Message;
use lettre::message::{Mailbox, MultiPart, SinglePart, header::ContentType};
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, CertificateStore, TlsParameters,
};
use lettre::transport::smtp::extension::ClientId;
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::{Attempt, DeliveryOptions, NotificationMessage};
use crate::message::endpoint::{Security, smtp_endpoint};
use crate::state::{NotificationSettings, SmtpSettings};

/// Environment variable naming a PEM file of certificate authorities trusted for the SMTP
/// server besides the built-in (Mozilla) roots: a relay with a company CA.
pub const CA_FILE_ENV: &str = "PORTICO_SMTP_CA_FILE";

/// A connection idle longer than this is closed rather than reused (servers drop idle
/// clients after a few minutes; RFC 5321 suggests 5).
const MAX_IDLE: Duration = Duration::from_secs(30);

/// An SMTP server to send through, with reusable connections and the sender addresses.
#[derive(Clone)]
pub struct Mailer {
    server: Arc<Server>,
    idle: Arc<Mutex<Vec<(AsyncSmtpConnection, Instant)>>>,
    from: Mailbox,
    reply_to: Option<Mailbox>,
}

/// How to reach and log in to the server.
struct Server {
    host: String,
    port: u16,
    /// How the connection is encrypted, set up once for every connection of the run.
    encryption: Encryption,
    credentials: Option<Credentials>,
    hello: ClientId,
    /// For connecting (through EHLO and AUTH), and again for each message.
    timeout: Duration,
}

impl Mailer {
    /// # Errors
    /// A setting that cannot work (checked at plan time too), or an unreadable CA file.
    pub fn new(
        settings: &NotificationSettings,
        server: &SmtpSettings,
        password: Option<String>,
        opts: &DeliveryOptions,
    ) -> Result<Mailer, String> {
        let at = smtp_endpoint(&server.url)?;
        let credentials = server
            .username
            .as_ref()
            .map(|user| Credentials::new(user.clone(), password.unwrap_or_default()));
        let mailbox = |value: &Option<String>, field: &str| {
            value
                .as_deref()
                .map(|v| {
                    v.parse::<Mailbox>()
                        .map_err(|e| format!("`notifications.{field}` `{v}`: {e}"))
                })
                .transpose()
        };
        let encryption = Encryption::new(at.security, &at.host)?;
        Ok(Mailer {
            server: Arc::new(Server {
                host: at.host,
                port: at.port,
                encryption,
                credentials,
                hello: ClientId::default(),
                timeout: opts.timeout,
            }),
            idle: Arc::default(),
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
        if let Some(conn) = self.reused() {
            match self.send_on(conn, &message).await {
                // The server closed a kept connection (idle, or after so many messages
                // each): the message goes on a new one. (Were the close to come after the
                // server took the message, it would arrive twice, with one Message-ID, as
                // after any retry.)
                Err(e) if closed(&e) => {}
                done => return settle(done),
            }
        }
        let conn = match tokio::time::timeout(self.server.timeout, self.server.connect()).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(attempt)) => return attempt,
            Err(_) => return Attempt::Retry(NO_ANSWER.into()),
        };
        settle(self.send_on(conn, &message).await)
    }

    /// Sends on `conn`, keeping it for the next message if it is still good.
    async fn send_on(
        &self,
        mut conn: AsyncSmtpConnection,
        message: &Message,
    ) -> Result<(), SendError> {
        let sent = tokio::time::timeout(
            self.server.timeout,
            conn.send(message.envelope(), &message.formatted()),
        )
        .await;
        match sent {
            Ok(Ok(_)) => {
                if !conn.has_broken() {
                    self.idle
                        .lock()
                        .expect("not poisoned")
                        .push((conn, Instant::now()));
                }
                Ok(())
            }
            // A connection that timed out may be mid-reply: never reused.
            Err(_) => Err(SendError::TimedOut),
            Ok(Err(e)) => Err(SendError::Smtp(e)),
        }
    }

    /// A connection kept from an earlier message, if one is fresh enough.
    fn reused(&self) -> Option<AsyncSmtpConnection> {
        let mut idle = self.idle.lock().expect("not poisoned");
        while let Some((conn, since)) = idle.pop() {
            if since.elapsed() < MAX_IDLE && !conn.has_broken() {
                return Some(conn);
            }
        }
        None
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

const NO_ANSWER: &str = "no answer from the SMTP server in time";

/// Why a message did not go on a connection.
enum SendError {
    TimedOut,
    Smtp(lettre::transport::smtp::Error),
}

/// Whether the server had closed the connection: no SMTP reply at all (end of stream,
/// reset), or 421, "closing the channel".
fn closed(e: &SendError) -> bool {
    match e {
        SendError::TimedOut => false,
        SendError::Smtp(e) => e
            .status()
            .map_or(!e.is_client(), |code| code.to_string() == "421"),
    }
}

fn settle(result: Result<(), SendError>) -> Attempt {
    match result {
        Ok(()) => Attempt::Sent,
        Err(SendError::TimedOut) => Attempt::Retry(NO_ANSWER.into()),
        Err(SendError::Smtp(e)) => failed(&e),
    }
}

/// What a failed attempt means for the message.
fn failed(e: &lettre::transport::smtp::Error) -> Attempt {
    if e.is_permanent() {
        Attempt::Permanent(format!("the SMTP server refused it: {e}"))
    } else if e.is_transient() {
        Attempt::Retry(format!("the SMTP server deferred it: {e}"))
    } else if e.is_timeout() {
        Attempt::Retry(NO_ANSWER.into())
    } else {
        Attempt::Retry(format!("SMTP failed: {e}"))
    }
}

impl Server {
    /// A new connection, encrypted as the URL says and logged in: greeting, EHLO, STARTTLS
    /// (refused when the server does not offer it), EHLO again, AUTH.
    async fn connect(&self) -> Result<AsyncSmtpConnection, Attempt> {
        let unreachable = |e: io::Error| {
            Attempt::Retry(format!(
                "cannot connect to {}:{}: {e}",
                self.host, self.port
            ))
        };
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(unreachable)?;
        tcp.set_nodelay(true).map_err(unreachable)?;
        let stream: Box<dyn AsyncTokioStream> = match &self.encryption {
            Encryption::Wrapper(connector, name) => Box::new(
                connector
                    .connect(name.clone(), tcp)
                    .await
                    .map(Tls)
                    .map_err(|e| Attempt::Retry(format!("TLS with `{}` failed: {e}", self.host)))?,
            ),
            Encryption::Plain | Encryption::StartTls(_) => Box::new(tcp),
        };
        let mut conn = AsyncSmtpConnection::connect_with_transport(stream, &self.hello)
            .await
            .map_err(|e| failed(&e))?;
        if let Encryption::StartTls(parameters) = &self.encryption {
            conn.starttls(parameters.clone(), &self.hello)
                .await
                .map_err(|e| failed(&e))?;
        }
        if let Some(credentials) = &self.credentials {
            conn.auth(&[Mechanism::Plain, Mechanism::Login], credentials)
                .await
                .map_err(|e| failed(&e))?;
        }
        Ok(conn)
    }
}

/// A connection's encryption, with what it trusts: Mozilla's roots (built in) plus those of
/// `CA_FILE_ENV`.
enum Encryption {
    Plain,
    /// TLS from the first byte (`smtps://`).
    Wrapper(tokio_rustls::TlsConnector, ServerName<'static>),
    /// STARTTLS, required (`smtp://`), through lettre.
    StartTls(TlsParameters),
}

impl Encryption {
    fn new(security: Security, host: &str) -> Result<Encryption, String> {
        if security == Security::Plain {
            return Ok(Encryption::Plain);
        }
        let extra = extra_roots()?;
        if security == Security::StartTls {
            let builder = TlsParameters::builder(host.to_string())
                .certificate_store(CertificateStore::WebpkiRoots);
            let builder = extra.into_iter().try_fold(builder, |builder, root| {
                Certificate::from_der(root.to_vec()).map(|cert| builder.add_root_certificate(cert))
            });
            return builder
                .and_then(|b| b.build_rustls())
                .map(Encryption::StartTls)
                .map_err(|e| format!("cannot set up TLS for `{host}`: {e}"));
        }
        let mut store = rustls::RootCertStore::empty();
        store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        store.add_parsable_certificates(extra);
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(store)
            .with_no_client_auth();
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| format!("`{host}` is not a valid TLS server name"))?;
        Ok(Encryption::Wrapper(
            tokio_rustls::TlsConnector::from(Arc::new(config)),
            name,
        ))
    }
}

/// The certificate authorities of the file `CA_FILE_ENV` names, if it is set.
fn extra_roots() -> Result<Vec<CertificateDer<'static>>, String> {
    let Some(path) = std::env::var_os(CA_FILE_ENV) else {
        return Ok(Vec::new());
    };
    let shown = std::path::Path::new(&path).display().to_string();
    let certs = CertificateDer::pem_file_iter(&path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("`{CA_FILE_ENV}` ({shown}) is not a readable PEM file: {e}"))?;
    let mut store = rustls::RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(certs.iter().cloned());
    if added == 0 || added < certs.len() {
        return Err(format!(
            "`{CA_FILE_ENV}` ({shown}) must hold CA certificates in PEM; {added} of {} could be used",
            certs.len()
        ));
    }
    Ok(certs)
}

/// A TLS stream lettre can speak SMTP over.
#[derive(Debug)]
struct Tls(tokio_rustls::client::TlsStream<TcpStream>);

impl AsyncTokioStream for Tls {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.get_ref().0.peer_addr()
    }
}

impl AsyncRead for Tls {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tls {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}
