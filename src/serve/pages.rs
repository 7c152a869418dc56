//! The pages: built-in minijinja templates (HTML auto-escaped), rendered into responses, and
//! the one stylesheet (no inline style or script, so the CSP can forbid both).

use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use minijinja::{AutoEscape, Environment, Value};

static PAGES: std::sync::OnceLock<Environment<'static>> = std::sync::OnceLock::new();

fn pages() -> &'static Environment<'static> {
    PAGES.get_or_init(|| {
        let mut env = Environment::new();
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        for (name, source) in [
            ("layout.html", include_str!("templates/layout.html")),
            ("login.html", include_str!("templates/login.html")),
            ("locked.html", include_str!("templates/locked.html")),
            ("home.html", include_str!("templates/home.html")),
            (
                "set_password.html",
                include_str!("templates/set_password.html"),
            ),
            ("two_factor.html", include_str!("templates/two_factor.html")),
            ("recovery.html", include_str!("templates/recovery.html")),
            ("forgot.html", include_str!("templates/forgot.html")),
            ("profile.html", include_str!("templates/profile.html")),
            ("throttled.html", include_str!("templates/throttled.html")),
            ("oidc_error.html", include_str!("templates/oidc_error.html")),
            (
                "oidc_logout.html",
                include_str!("templates/oidc_logout.html"),
            ),
        ] {
            env.add_template(name, source).expect("a built-in template");
        }
        env
    })
}

/// A page with this status.
pub fn page(status: StatusCode, name: &str, context: Value) -> Response {
    match pages().get_template(name).and_then(|t| t.render(context)) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            eprintln!("error: the page {name} did not render: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
        }
    }
}

/// `/assets/portico.css`.
pub async fn css() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("templates/portico.css"),
    )
        .into_response()
}

/// `/assets/passkey.js`: the passkey ceremonies' browser side (the only script).
pub async fn passkey_js() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("templates/passkey.js"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_page_renders_and_escapes() {
        for name in [
            "login.html",
            "locked.html",
            "home.html",
            "set_password.html",
            "two_factor.html",
            "recovery.html",
            "forgot.html",
            "profile.html",
            "throttled.html",
            "oidc_error.html",
            "oidc_logout.html",
        ] {
            let html = super::pages()
                .get_template(name)
                .unwrap()
                .render(minijinja::context! {
                    title => "T", site => "<b>Acme</b>", email => "\"x\"@y", csrf => "c",
                    token => "t", min_length => 12, minutes => 30, permissions => Vec::<()>::new(),
                    enrol => true, qr => "", secret => "S", codes => vec!["a"],
                })
                .unwrap();
            assert!(
                html.contains("&lt;b&gt;Acme&lt;&#x2f;b&gt;") || html.contains("&lt;b&gt;Acme"),
                "{name}: {html}"
            );
            // Scripts only from files (the CSP allows no inline script).
            assert_eq!(
                html.matches("<script").count(),
                html.matches("<script src=\"/assets/").count(),
                "{name}"
            );
        }
    }
}
