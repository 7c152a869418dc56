//! A real HTTP endpoint on 127.0.0.1 that records requests and answers as told.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// One received request.
#[derive(Clone, Debug)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// How the endpoint answers.
#[derive(Clone, Debug)]
pub enum Behaviour {
    Ok,
    Status(u16),
    Slow(Duration),
    /// 307 to this URL.
    Redirect(String),
}

pub struct Endpoint {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
    pub behaviour: Arc<Mutex<Behaviour>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Endpoint {
    pub fn start(behaviour: Behaviour) -> Endpoint {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", server.server_addr().to_ip().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let behaviour = Arc::new(Mutex::new(behaviour));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, b, st) = (received.clone(), behaviour.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                let Ok(Some(mut request)) = server.recv_timeout(Duration::from_millis(50)) else {
                    continue;
                };
                let mut body = String::new();
                let _ = std::io::Read::read_to_string(request.as_reader(), &mut body);
                let headers = request
                    .headers()
                    .iter()
                    .map(|h| (h.field.to_string(), h.value.to_string()))
                    .collect();
                r.lock().unwrap().push(Received { headers, body });
                let now = b.lock().unwrap().clone();
                let mut location = None;
                let status = match now {
                    Behaviour::Ok => 200,
                    Behaviour::Status(code) => code,
                    Behaviour::Slow(delay) => {
                        std::thread::sleep(delay);
                        200
                    }
                    Behaviour::Redirect(to) => {
                        location = Some(to);
                        307
                    }
                };
                let location = location.map(|to| ("Location", to));
                respond_closing(request, status, location.as_slice(), "{}");
            }
        });
        Endpoint {
            url,
            received,
            behaviour,
            stop,
            thread: Some(thread),
        }
    }

    pub fn set(&self, behaviour: Behaviour) {
        *self.behaviour.lock().unwrap() = behaviour;
    }

    pub fn requests(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers `request` (a JSON `body`) and has the client close the connection. tiny_http
/// keeps each kept-alive connection on one of its pool's threads, and its pool can queue a
/// new connection behind them instead of starting a thread (two connections taken by one
/// waiting thread): a client opening a fifth connection while four were kept alive waited
/// for one to close, ten seconds, about one run in ten. tiny_http does not let a response
/// carry `Connection`, so the response is written as it goes on the wire.
pub fn respond_closing(
    request: tiny_http::Request,
    status: u16,
    headers: &[(&str, String)],
    body: &str,
) {
    use std::io::Write as _;
    let reason = tiny_http::StatusCode(status).default_reason_phrase();
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut writer = request.into_writer();
    let _ = writer.write_all(head.as_bytes());
    let _ = writer.write_all(body.as_bytes());
    let _ = writer.flush();
}

/// A URL on 127.0.0.1 where nothing listens.
pub fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}/hook")
}

/// The set-password token of the newest message sent to `email`.
pub fn token_of(endpoint: &Endpoint, email: &str) -> String {
    let body = endpoint
        .requests()
        .iter()
        .rev()
        .map(|r| r.json())
        .find(|b| b["email"] == email)
        .unwrap();
    let url = body["set_password"]["url"].as_str().unwrap().to_string();
    url.split("token=").nth(1).unwrap().to_string()
}
