//! The reviewer pages' templates, embedded in the binary and compiled once.

use std::sync::LazyLock;

use axum::response::Html;
use minijinja::{AutoEscape, Environment, Error, Output, State, Value};
use serde::Serialize;

/// Every template, by name; `.html` names turn on HTML auto-escaping.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("error.html", include_str!("../templates/error.html")),
    ("login.html", include_str!("../templates/login.html")),
    (
        "signed_in.html",
        include_str!("../templates/signed_in.html"),
    ),
    ("queue.html", include_str!("../templates/queue.html")),
    ("history.html", include_str!("../templates/history.html")),
    ("ticket.html", include_str!("../templates/ticket.html")),
    (
        "dev_authorize.html",
        include_str!("../templates/dev_authorize.html"),
    ),
];

static ENVIRONMENT: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_formatter(html_formatter);
    env.add_filter("path_segment", path_segment);
    env.add_filter("when", when);
    for (name, source) in TEMPLATES {
        // A template that does not compile is a build defect; the unit test below renders
        // every one, and rendering reports the error instead of panicking.
        if let Err(error) = env.add_template(name, source) {
            tracing::error!(%error, template = name, "template does not compile");
        }
    }
    env
});

/// Escapes strings for HTML like the default formatter, but leaves `/` alone: the default
/// writes `&#x2f;`, which is valid yet turns every ref name and path into noise.
fn html_formatter(out: &mut Output, state: &State, value: &Value) -> Result<(), Error> {
    match (state.auto_escape(), value.as_str()) {
        (AutoEscape::Html, Some(text)) if !value.is_safe() => {
            let mut escaped = String::with_capacity(text.len());
            for c in text.chars() {
                match c {
                    '&' => escaped.push_str("&amp;"),
                    '<' => escaped.push_str("&lt;"),
                    '>' => escaped.push_str("&gt;"),
                    '"' => escaped.push_str("&quot;"),
                    '\'' => escaped.push_str("&#x27;"),
                    other => escaped.push(other),
                }
            }
            out.write_str(&escaped).map_err(Error::from)?;
            Ok(())
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

/// Percent-encodes a value for one path segment of a link: everything but RFC 3986's
/// unreserved characters.
pub fn path_segment(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// An RFC 3339 UTC instant as people read it: `2026-12-03 13:36:16 UTC`. Anything else is
/// shown as it is.
pub fn when(value: &str) -> String {
    match value.strip_suffix('Z').and_then(|v| v.split_once('T')) {
        Some((day, time)) => format!("{day} {time} UTC"),
        None => value.to_owned(),
    }
}

/// Renders template `name` with `context`.
pub fn render<S: Serialize>(name: &str, context: S) -> Result<String, minijinja::Error> {
    ENVIRONMENT
        .get_template(name)?
        .render(Value::from_serialize(context))
}

/// Renders the error page.
pub fn error_page(status: u16, title: &str, message: &str) -> Result<String, minijinja::Error> {
    render(
        "error.html",
        minijinja::context! { status => status, title => title, message => message },
    )
}

/// Wraps rendered HTML as a response body.
pub fn html(text: String) -> Html<String> {
    Html(text)
}

/// Percent-encodes a value for a query string.
pub fn url_encode(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_compiles() {
        for (name, _) in TEMPLATES {
            assert!(
                ENVIRONMENT.get_template(name).is_ok(),
                "{name} does not compile"
            );
        }
    }

    #[test]
    fn instants_read_as_a_day_a_time_and_utc() {
        assert_eq!(when("2026-12-03T13:36:16Z"), "2026-12-03 13:36:16 UTC");
        assert_eq!(when("@5ms"), "@5ms");
    }

    #[test]
    fn path_segments_escape_slashes_and_spaces() {
        assert_eq!(path_segment("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn the_error_page_escapes_its_message() {
        let page = error_page(403, "Refused", "<script>x</script>").expect("rendered");
        assert!(page.contains("&lt;script&gt;"), "{page}");
        assert!(page.contains("<h1>Refused</h1>"), "{page}");
    }

    #[test]
    fn html_escaping_covers_quotes_but_leaves_slashes() {
        let page = error_page(400, "a/b", "\"it's\" & <b>").expect("rendered");
        assert!(page.contains("<h1>a/b</h1>"), "{page}");
        assert!(
            page.contains("&quot;it&#x27;s&quot; &amp; &lt;b&gt;"),
            "{page}"
        );
    }
}
