//! `portico serve` started for real on 127.0.0.1, and a small HTTP client (reqwest) that
//! keeps cookies like a browser, follows no redirect, and sends what a browser's same-origin
//! form post sends.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Env;

/// The test servers' key for secrets at rest (32 bytes, base64).
pub const TEST_KEY: &str = "dGVzdC1rZXktZm9yLXBvcnRpY28tc2VydmUtdGVzdHM=";

/// A running `portico serve`, stopped when dropped.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// `127.0.0.1:PORT`.
    pub host: String,
}

impl Server {
    /// Starts `portico serve --insecure-cookies` on a free port against `env`'s database and
    /// waits until it answers `/readyz`.
    pub fn start(env: &Env) -> Server {
        let port = free_port();
        Server::start_on(env, port)
    }

    /// The same, on a given port.
    pub fn start_on(env: &Env, port: u16) -> Server {
        Server::start_with(env, port, &[])
    }

    /// The same, with more arguments to `serve`.
    pub fn start_with(env: &Env, port: u16, extra: &[&str]) -> Server {
        let host = format!("127.0.0.1:{port}");
        let mut args = vec!["serve", "--listen", &host, "--insecure-cookies"];
        args.extend(extra);
        let mut cmd: Command = env.std_command(&args);
        cmd.env("PORTICO_SECRET_KEY", TEST_KEY);
        let log = std::fs::File::create(env.path(&format!("serve-{port}.log"))).unwrap();
        cmd.stdout(Stdio::null()).stderr(log);
        let child = cmd.spawn().expect("portico serve starts");
        let server = Server {
            child,
            url: format!("http://{host}"),
            host,
        };
        let started = Instant::now();
        loop {
            let client = Client::new(&server);
            if super::block_on(async { client.get("/readyz").await.ok() })
                .is_some_and(|r| r.status == 200)
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "portico serve did not start: {}",
                std::fs::read_to_string(env.path(&format!("serve-{port}.log"))).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A browser-like client: a cookie jar, no redirects followed.
pub struct Client {
    http: reqwest::Client,
    base: String,
    host: String,
    jar: Mutex<BTreeMap<String, String>>,
}

impl Client {
    pub fn new(server: &Server) -> Client {
        Client::at(&server.host)
    }

    /// A client of whatever listens at `host` (`127.0.0.1:PORT`): portico, or a proxy.
    pub fn at(host: &str) -> Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Client {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            base: format!("http://{host}"),
            host: host.to_string(),
            jar: Mutex::new(BTreeMap::new()),
        }
    }

    /// The cookie with this name, if the server set one.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.jar.lock().unwrap().get(name).cloned()
    }

    pub fn set_cookie(&self, name: &str, value: &str) {
        self.jar
            .lock()
            .unwrap()
            .insert(name.to_string(), value.to_string());
    }

    fn cookie_header(&self) -> String {
        self.jar
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn finish(&self, response: reqwest::Response) -> Answer {
        for value in response.headers().get_all(reqwest::header::SET_COOKIE) {
            let text = value.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let mut jar = self.jar.lock().unwrap();
            if value.is_empty() || text.contains("Max-Age=0") {
                jar.remove(name);
            } else {
                jar.insert(name.to_string(), value.to_string());
            }
        }
        Answer {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap(),
        }
    }

    pub async fn get(&self, path: &str) -> reqwest::Result<Answer> {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .header(reqwest::header::HOST, &self.host)
            .header(reqwest::header::COOKIE, self.cookie_header())
            .send()
            .await?;
        Ok(self.finish(response).await)
    }

    /// The same browser on another website: its requests carry that `Host`, as a proxy
    /// routing that website's host to portico passes it on.
    pub fn on_host(server: &Server, host: &str) -> Client {
        Client {
            host: host.to_string(),
            ..Client::new(server)
        }
    }

    /// A GET with headers a hostile browser adds (forged `Remote-*`, say).
    pub async fn get_forged(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut request = self
            .http
            .get(format!("{}{path}", self.base))
            .header(reqwest::header::HOST, &self.host)
            .header(reqwest::header::COOKIE, self.cookie_header());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        self.finish(response).await
    }

    /// A same-origin form post, as a browser sends it (`Origin`, `Sec-Fetch-Site`).
    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> Answer {
        self.post_from(path, form, &format!("http://{}", self.host), "same-origin")
            .await
    }

    /// A form post from `origin`.
    pub async fn post_from(
        &self,
        path: &str,
        form: &[(&str, &str)],
        origin: &str,
        fetch_site: &str,
    ) -> Answer {
        self.post_raw(
            path,
            form,
            &[("Origin", origin), ("Sec-Fetch-Site", fetch_site)],
        )
        .await
    }

    /// A same-origin form post with more headers (`X-Forwarded-For`, say).
    pub async fn post_with(
        &self,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Answer {
        let origin = format!("http://{}", self.host);
        let mut all = vec![
            ("Origin", origin.as_str()),
            ("Sec-Fetch-Site", "same-origin"),
        ];
        all.extend_from_slice(headers);
        self.post_raw(path, form, &all).await
    }

    /// A form post with exactly these extra headers.
    async fn post_raw(
        &self,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::HOST, &self.host)
            .header(reqwest::header::COOKIE, self.cookie_header())
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            );
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request
            .body(
                url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form)
                    .finish(),
            )
            .send()
            .await
            .unwrap();
        self.finish(response).await
    }

    /// The form token a page gave this browser.
    pub fn csrf(&self) -> String {
        self.cookie("portico-csrf").expect("a form token cookie")
    }

    /// Opens the sign-in page and signs in; the answer to the post.
    pub async fn sign_in(&self, email: &str, password: &str) -> Answer {
        self.get("/login").await.unwrap();
        let csrf = self.csrf();
        self.post(
            "/login",
            &[("email", email), ("password", password), ("csrf", &csrf)],
        )
        .await
    }
}

/// A TOTP code from an implementation nobody here wrote (Python's pyotp), for `secret` at
/// the Unix time `at`.
pub fn pyotp(secret: &str, at: i64) -> String {
    let python = std::env::var("PORTICO_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(python)
        .args([
            "-c",
            "import pyotp, sys; print(pyotp.TOTP(sys.argv[1]).at(int(sys.argv[2])))",
            secret,
            &at.to_string(),
        ])
        .output()
        .expect("python3 with pyotp: bash .ci/test installs it");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Waits out the login service's one-second view of a session: a check reads a session and its
/// login from the database at most once a second (DESIGN §10.4: a revoke applies within a
/// second), so a change made behind the server's back shows after this.
pub fn past_the_cache() {
    std::thread::sleep(Duration::from_millis(1100));
}
