//! Headless Chromium driven through ChromeDriver's W3C WebDriver protocol (plain HTTP on
//! 127.0.0.1), for tests of what a person sees in the HTML report.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

pub struct Browser {
    driver: Child,
    base: String,
    session: String,
    client: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium session.
    pub fn start() -> Browser {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "chromedriver is installed (`bash .ci/test` installs chromium and chromium-driver)",
            );
        let base = format!("http://127.0.0.1:{port}");
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::new();
        let started = Instant::now();
        loop {
            let ready = super::block_on(async {
                let r = client.get(format!("{base}/status")).send().await.ok()?;
                r.json::<Value>().await.ok()
            });
            if ready.is_some_and(|v| v["value"]["ready"] == true) {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1400,900",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([format!("--user-data-dir={}", profile.path().display())])
        .collect::<Vec<_>>();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}
        }}});
        let mut browser = Browser {
            driver,
            base,
            session: String::new(),
            client,
            _profile: profile,
        };
        let created = browser.call("POST", "/session", caps);
        browser.session = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"))
            .to_string();
        browser
    }

    fn call(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let reply: Value = super::block_on(async {
            let request = match method {
                "GET" => self.client.get(&url),
                "DELETE" => self.client.delete(&url),
                _ => self.client.post(&url).json(&body),
            };
            request
                .timeout(Duration::from_secs(120))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        });
        reply["value"].clone()
    }

    fn session_call(&self, method: &str, path: &str, body: Value) -> Value {
        let value = self.call(method, &format!("/session/{}{path}", self.session), body);
        if let Some(error) = value.get("error") {
            panic!("WebDriver {path}: {error} {}", value["message"]);
        }
        value
    }

    /// Adds a virtual passkey authenticator (WebDriver's WebAuthn extension): CTAP2, built
    /// in, with resident keys and user verification that succeeds. Returns its id.
    pub fn add_virtual_authenticator(&self) -> String {
        let value = self.session_call(
            "POST",
            "/webauthn/authenticator",
            json!({
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": true,
                "hasUserVerification": true,
                "isUserVerified": true,
                "automaticPresenceSimulation": true,
            }),
        );
        value
            .as_str()
            .unwrap_or_else(|| panic!("{value}"))
            .to_string()
    }

    /// The credentials a virtual authenticator holds (id, user handle, sign count).
    pub fn virtual_credentials(&self, authenticator: &str) -> Vec<Value> {
        let value = self.session_call(
            "GET",
            &format!("/webauthn/authenticator/{authenticator}/credentials"),
            Value::Null,
        );
        value.as_array().cloned().unwrap_or_default()
    }

    /// Opens a URL and waits until the page's script has run (`body[data-ready]`).
    pub fn open(&self, url: &str) -> Duration {
        let started = Instant::now();
        self.session_call("POST", "/url", json!({ "url": url }));
        while self.eval("return document.body && document.body.getAttribute('data-ready')") != "1" {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the page never became ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        started.elapsed()
    }

    /// Opens a URL of a page without scripts and waits until it has loaded.
    pub fn visit(&self, url: &str) {
        self.session_call("POST", "/url", json!({ "url": url }));
        self.settle();
    }

    /// Clicks an element that leaves the page (a form's button) and waits until the next
    /// page has loaded: the old document is marked, so a check made before the browser
    /// starts navigating never passes for the new page.
    pub fn click_to_next_page(&self, css: &str) {
        self.eval("window.__portico_leaving = true");
        self.click(css);
        let started = Instant::now();
        while self
            .eval("return window.__portico_leaving !== true && document.readyState === 'complete'")
            != true
        {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the next page never loaded"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until the current page has loaded.
    pub fn settle(&self) {
        let started = Instant::now();
        while self.eval("return document.readyState") != "complete" {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the page never loaded"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The page's path.
    pub fn path(&self) -> String {
        self.eval("return location.pathname")
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Runs a script in the page and returns its result.
    pub fn eval(&self, script: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
    }

    fn element(&self, css: &str) -> String {
        let found = self.session_call(
            "POST",
            "/element",
            json!({ "using": "css selector", "value": css }),
        );
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap()
            .to_string()
    }

    /// Types into an element, as a person would (key events).
    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.session_call(
            "POST",
            &format!("/element/{id}/value"),
            json!({ "text": text }),
        );
    }

    /// Clears an input.
    pub fn clear(&self, css: &str) {
        let id = self.element(css);
        self.session_call("POST", &format!("/element/{id}/clear"), json!({}));
    }

    /// Clicks an element.
    pub fn click(&self, css: &str) {
        let id = self.element(css);
        self.session_call("POST", &format!("/element/{id}/click"), json!({}));
    }

    /// The visible text of the page.
    pub fn text(&self) -> String {
        self.eval("return document.body.innerText")
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The cells of every visible table row.
    pub fn rows(&self) -> Vec<Vec<String>> {
        let value = self.eval(
            "return Array.from(document.querySelectorAll('#rows tr')).map(tr => Array.from(tr.cells).map(td => td.innerText))",
        );
        serde_json::from_value(value).unwrap()
    }

    /// A PNG screenshot of the window.
    pub fn screenshot(&self) -> Vec<u8> {
        use base64::Engine as _;
        let png = self.session_call("GET", "/screenshot", json!({}));
        base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap()
    }

    /// Saves a screenshot as `<name>.png` when `PORTICO_SCREENSHOTS` names a folder (to look
    /// at the pages).
    pub fn keep(&self, name: &str) {
        if let Some(dir) = std::env::var_os("PORTICO_SCREENSHOTS") {
            std::fs::write(
                std::path::Path::new(&dir).join(format!("{name}.png")),
                self.screenshot(),
            )
            .unwrap();
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), json!({}));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
