//! The load driver of `benches/serve.sh` (not a test): the argon2 floor, a flood of wrong
//! passwords at a fixed rate with legitimate sign-ins timed beside it, and signing in many
//! logins to hand their sessions to `wrk`. Prints figures.
//!
//!   serve_load hash PASSWORD
//!   serve_load floor SECONDS
//!   serve_load sessions URL N EMAIL_PATTERN PASSWORD OUT_FILE
//!   serve_load flood URL RATE SECONDS EMAIL_PATTERN PASSWORD SPREAD
//!
//! EMAIL_PATTERN has `{}` for the login's number (0, 1, …). SPREAD is `one` (every wrong
//! password from one address) or `many` (each from its own address, as `X-Forwarded-For`
//! through a trusted proxy: a distributed flood).

/// The allocator portico uses, with its default purge delay as `serve` keeps it: the floor
/// reuses argon2's memory as the server does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(256)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("a client")
}

/// One sign-in: the status, the session cookie's value when one was set, and the time.
async fn sign_in(
    http: &reqwest::Client,
    url: &str,
    email: &str,
    password: &str,
    forwarded: Option<&str>,
) -> (u16, Option<String>, Duration) {
    let started = Instant::now();
    let mut request = http
        .post(format!("{url}/login"))
        .header("Cookie", "portico-csrf=bench")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs([("email", email), ("password", password), ("csrf", "bench")])
                .finish(),
        );
    if let Some(address) = forwarded {
        request = request.header("X-Forwarded-For", address);
    }
    match request.send().await {
        Ok(response) => {
            let session = response
                .headers()
                .get_all("set-cookie")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(|v| v.strip_prefix("portico-session="))
                .and_then(|v| v.split(';').next())
                .map(str::to_string);
            (response.status().as_u16(), session, started.elapsed())
        }
        Err(_) => (0, None, started.elapsed()),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// argon2id hashes per second with every core hashing (the parameters portico uses).
fn floor(seconds: f64) {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    std::thread::scope(|s| {
        for _ in 0..threads {
            let done = done.clone();
            s.spawn(move || {
                while Instant::now() < until {
                    portico::passwords::hash("a-benchmark-password").expect("hashes");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
    });
    let rate = done.load(Ordering::Relaxed) as f64 / seconds;
    println!("argon2 floor: {rate:.1} hashes/s on {threads} cores");
}

async fn sessions(url: &str, n: usize, pattern: &str, password: &str, out: &str) {
    let http = client();
    let mut ids = Vec::new();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (http, url, email, password) = (
            http.clone(),
            url.to_string(),
            pattern.replace("{}", &i.to_string()),
            password.to_string(),
        );
        tasks.spawn(async move { sign_in(&http, &url, &email, &password, None).await });
        while tasks.len() >= 8 {
            if let Some(Ok((_, Some(id), _))) = tasks.join_next().await {
                ids.push(id);
            }
        }
    }
    while let Some(done) = tasks.join_next().await {
        if let Ok((_, Some(id), _)) = done {
            ids.push(id);
        }
    }
    std::fs::write(out, ids.join("\n") + "\n").expect("writes the sessions");
    println!("signed in {} of {n} logins", ids.len());
}

async fn flood(url: &str, rate: f64, seconds: f64, pattern: &str, password: &str, spread: &str) {
    let http = client();
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    let statuses = Arc::new(std::sync::Mutex::new(
        std::collections::BTreeMap::<u16, u64>::new(),
    ));
    // The flood: wrong passwords for existing logins, at a fixed rate.
    let flooder = {
        let (http, url, pattern, statuses) = (
            http.clone(),
            url.to_string(),
            pattern.to_string(),
            statuses.clone(),
        );
        let spread = spread.to_string();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            let mut n: u64 = 0;
            let mut tasks = tokio::task::JoinSet::new();
            while Instant::now() < until {
                tick.tick().await;
                n += 1;
                let (http, url, statuses) = (http.clone(), url.clone(), statuses.clone());
                let email = pattern.replace("{}", &(1000 + n % 50_000).to_string());
                let forwarded = (spread == "many")
                    .then(|| format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255));
                tasks.spawn(async move {
                    let (status, _, _) =
                        sign_in(&http, &url, &email, "wrong-password", forwarded.as_deref()).await;
                    *statuses.lock().unwrap().entry(status).or_default() += 1;
                });
                while tasks.try_join_next().is_some() {}
            }
            while tasks.join_next().await.is_some() {}
        })
    };
    // Legitimate sign-ins beside it, one at a time, each its own login.
    let mut times = Vec::new();
    let mut ok = 0;
    let mut i = 0;
    tokio::time::sleep(Duration::from_secs(1)).await;
    while Instant::now() < until {
        let email = pattern.replace("{}", &(100 + i).to_string());
        let (status, _, took) = sign_in(&http, url, &email, password, Some("192.0.2.1")).await;
        ok += usize::from(status == 303);
        times.push(took);
        i += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = flooder.await;
    times.sort();
    println!(
        "legitimate sign-ins during a {rate}/s flood ({spread} address(es)): {ok} of {} succeeded, p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        times.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        percentile(&times, 1.0)
    );
    println!("flood answers by status: {:?}", statuses.lock().unwrap());
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| {
        args.get(i)
            .map(String::as_str)
            .expect("see the usage in the source")
    };
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    match arg(0) {
        "hash" => println!("{}", portico::passwords::hash(arg(1)).expect("hashes")),
        "floor" => floor(arg(1).parse().expect("seconds")),
        "sessions" => runtime.block_on(sessions(
            arg(1),
            arg(2).parse().expect("n"),
            arg(3),
            arg(4),
            arg(5),
        )),
        "flood" => runtime.block_on(flood(
            arg(1),
            arg(2).parse().expect("rate"),
            arg(3).parse().expect("seconds"),
            arg(4),
            arg(5),
            arg(6),
        )),
        other => panic!("unknown mode {other}"),
    }
}
