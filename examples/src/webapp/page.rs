//! The web app's pure parts: HTML rendering with escaping (the page frame
//! with its CSRF token, the hidden token field, the stylesheet), the device
//! label shown on "your devices", the time format, and the cross-site check
//! of state-changing requests. No I/O here; the handlers in `webapp.rs` call it.

use std::fmt::Write as _;

/// `text` with the five HTML-significant characters escaped, safe inside an
/// element or a double-quoted attribute.
///
/// ```
/// use sessionkit_examples::webapp::page::escape;
/// assert_eq!(escape(r#"<a href="x">&'"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
/// ```
#[must_use]
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A short, fixed-vocabulary label for a `User-Agent` ("Chrome on Linux"):
/// what "your devices" shows. Only the label is stored in the session, never
/// the header itself, so a client cannot put its own text on the page.
///
/// ```
/// use sessionkit_examples::webapp::page::device_label;
/// let ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36";
/// assert_eq!(device_label(ua), "Headless Chrome on Linux");
/// assert_eq!(device_label("curl/8.5.0"), "curl");
/// ```
#[must_use]
pub fn device_label(user_agent: &str) -> String {
    let browser = [
        ("curl/", "curl"),
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("HeadlessChrome/", "Headless Chrome"),
        ("Chromium/", "Chromium"),
        ("Chrome/", "Chrome"),
        ("Firefox/", "Firefox"),
        ("Safari/", "Safari"),
    ]
    .into_iter()
    .find(|(marker, _)| user_agent.contains(marker))
    .map_or("Unknown browser", |(_, name)| name);
    if browser == "curl" {
        return browser.to_owned();
    }
    let os = [
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ]
    .into_iter()
    .find(|(marker, _)| user_agent.contains(marker))
    .map(|(_, name)| name);
    match os {
        Some(os) => format!("{browser} on {os}"),
        None => browser.to_owned(),
    }
}

/// `ms` since the Unix epoch as `YYYY-MM-DD HH:MM:SS UTC`.
///
/// ```
/// use sessionkit_examples::webapp::page::utc;
/// assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
/// assert_eq!(utc(1_796_046_587_000), "2026-11-30 13:49:47 UTC");
/// ```
#[must_use]
pub fn utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// The proleptic Gregorian date of `days` after 1970-01-01 (Howard
/// Hinnant's days-to-civil algorithm, for non-negative days).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// Whether a state-changing request comes from another site and must be
/// refused (cross-site request forgery).
///
/// Browsers say where a request comes from: `Sec-Fetch-Site` (every current
/// browser) must be `same-origin` or `none` (typed in the address bar);
/// without it, an `Origin` header must name this host. A request with
/// neither (curl, scripts) is no forgery: no browser sent it with the
/// victim's cookie. It runs before sessionkit's own CSRF check (the
/// session's token in every form, and the same Fetch Metadata rule), as
/// defence in depth on top of `SameSite=Lax` cookies and the token.
///
/// ```
/// use sessionkit_examples::webapp::page::cross_site;
/// assert!(!cross_site(Some("same-origin"), None, Some("127.0.0.1:8080")));
/// assert!(cross_site(Some("cross-site"), None, Some("127.0.0.1:8080")));
/// assert!(cross_site(None, Some("https://evil.example"), Some("127.0.0.1:8080")));
/// assert!(!cross_site(None, None, Some("127.0.0.1:8080")));
/// ```
#[must_use]
pub fn cross_site(sec_fetch_site: Option<&str>, origin: Option<&str>, host: Option<&str>) -> bool {
    if let Some(site) = sec_fetch_site {
        return !matches!(site.trim(), "same-origin" | "none");
    }
    let Some(origin) = origin else {
        return false;
    };
    let authority = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    match (authority, host) {
        (Some(authority), Some(host)) => !authority.eq_ignore_ascii_case(host.trim()),
        // `Origin: null` (sandboxed frames, some redirects) or no `Host`.
        _ => true,
    }
}

/// What every page shows around its body: who is signed in (the
/// navigation, with its sign-out form), the one-time notice taken for this
/// page, and the session's CSRF token (in a `<meta name="csrf-token">` tag
/// for scripts, and in the sign-out form). Error pages use the default:
/// nobody, no notice, no token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frame {
    /// The signed-in user.
    pub user: Option<String>,
    /// The flash notice for this page.
    pub notice: Option<String>,
    /// A CSRF token of the session (`Session::csrf_token`).
    pub csrf_token: Option<String>,
}

/// The hidden form field carrying `token`, for every form that posts.
///
/// ```
/// use sessionkit_examples::webapp::page::token_field;
/// assert_eq!(token_field("a<b"), r#"<input type="hidden" name="csrf_token" value="a&lt;b">"#);
/// ```
#[must_use]
pub fn token_field(token: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf_token\" value=\"{}\">",
        escape(token)
    )
}

/// The stylesheet every page links (`GET /style.css`): the CSP allows no
/// inline style, so layout is by class.
pub const STYLE_CSS: &str = r#":root { color-scheme: light; --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --accent: #0b5cad; --ok: #1a7f37; --bad: #b3261e; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 52rem; padding: 0 1rem 3rem; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); }
nav { display: flex; flex-wrap: wrap; gap: .25rem 1rem; align-items: center; padding: .75rem 0; border-bottom: 1px solid var(--line); }
nav a { color: var(--accent); text-decoration: none; }
nav a:hover { text-decoration: underline; }
nav .user { margin-left: auto; color: var(--muted); }
form.inline { display: inline; margin: 0; }
h1 { font-size: 1.5rem; margin: 1.25rem 0 .75rem; }
.notice { padding: .5rem .75rem; border-left: 4px solid var(--ok); background: #dafbe1; margin: 1rem 0 0; }
.error { padding: .5rem .75rem; border-left: 4px solid var(--bad); background: #ffebe9; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
th, td { text-align: left; padding: .4rem .5rem; border-bottom: 1px solid var(--line); }
th { color: var(--muted); font-weight: 600; }
label { margin-right: .75rem; }
input, select, button { font: inherit; }
input:not([type]), input[type=password], select { padding: .25rem .4rem; border: 1px solid var(--line); border-radius: 4px; }
button { padding: .3rem .8rem; border: 1px solid var(--accent); border-radius: 4px; background: var(--accent); color: #fff; cursor: pointer; }
button.secondary, form.inline button { background: #fff; color: var(--accent); }
.actions form { display: inline-block; margin: 0 .5rem .5rem 0; }
.current { color: var(--ok); }
code { background: #f6f8fa; padding: 0 .25rem; border-radius: 3px; }
"#;

/// A whole page: the layout, the navigation for `frame`'s user (signed in
/// or not), its notice, and `body` (already HTML).
#[must_use]
pub fn layout(title: &str, frame: &Frame, body: &str) -> String {
    let mut html = String::with_capacity(body.len() + 1024);
    let _ = write!(
        html,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
    );
    if let Some(token) = &frame.csrf_token {
        let _ = write!(
            html,
            "<meta name=\"csrf-token\" content=\"{}\">",
            escape(token)
        );
    }
    let _ = write!(
        html,
        "<link rel=\"stylesheet\" href=\"/style.css\">\
         <title>{} · sessionkit shop</title></head><body>\n<nav>\
         <a href=\"/\">Home</a> <a href=\"/cart\">Cart</a> \
         <a href=\"/parallel\">Parallel requests</a>",
        escape(title)
    );
    match &frame.user {
        Some(user) => {
            let _ = write!(
                html,
                " <a href=\"/devices\">Your devices</a> \
                 <span id=\"user\" class=\"user\">Signed in as <b>{}</b></span> \
                 <form class=\"inline\" method=\"post\" action=\"/logout\">{}\
                 <button id=\"sign-out\" type=\"submit\">Sign out</button></form>",
                escape(user),
                frame
                    .csrf_token
                    .as_deref()
                    .map(token_field)
                    .unwrap_or_default()
            );
        }
        None => html.push_str(" <a id=\"sign-in-link\" class=\"user\" href=\"/login\">Sign in</a>"),
    }
    html.push_str("</nav>\n");
    if let Some(notice) = &frame.notice {
        let _ = writeln!(
            html,
            "<p id=\"notice\" class=\"notice\" role=\"status\">{}</p>",
            escape(notice)
        );
    }
    let _ = write!(html, "<h1>{}</h1>\n{body}\n</body></html>\n", escape(title));
    html
}

/// The sign-in form (posting `token`), with `error` above it when the last
/// attempt failed.
#[must_use]
pub fn login_form(token: &str, error: Option<&str>) -> String {
    let mut html = String::new();
    if let Some(error) = error {
        let _ = write!(
            html,
            "<p id=\"error\" class=\"error\" role=\"alert\">{}</p>",
            escape(error)
        );
    }
    let _ = write!(
        html,
        "<form id=\"login\" method=\"post\" action=\"/login\">{}\
         <label>User <input id=\"username\" name=\"username\" autocomplete=\"username\" required></label> \
         <label>Password <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label> \
         <label><input id=\"remember\" name=\"remember\" type=\"checkbox\" value=\"on\"> Remember me for 30 days</label> \
         <button id=\"sign-in\" type=\"submit\">Sign in</button></form>\
         <p>Demo accounts: <code>alice</code> / <code>wonderland</code>, <code>bob</code> / <code>builder</code>.</p>",
        token_field(token)
    );
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_leaves_plain_text_alone() {
        assert_eq!(escape("Chrome on Linux 1/2"), "Chrome on Linux 1/2");
        assert_eq!(escape(""), "");
    }

    #[test]
    fn device_labels_name_browser_and_os() {
        let cases = [
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36 Edg/120.0", "Edge on Windows"),
            ("Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0", "Firefox on Linux"),
            ("Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36", "Chrome on Android"),
            ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1", "Safari on iOS"),
            ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15", "Safari on macOS"),
            ("<script>alert(1)</script>", "Unknown browser"),
            ("", "Unknown browser"),
        ];
        for (ua, label) in cases {
            assert_eq!(device_label(ua), label, "{ua}");
        }
    }

    #[test]
    fn utc_handles_leap_years_and_month_ends() {
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_709_251_199_999), "2024-02-29 23:59:59 UTC");
        assert_eq!(utc(1_735_689_599_000), "2024-12-31 23:59:59 UTC");
        assert_eq!(utc(1_735_689_600_000), "2025-01-01 00:00:00 UTC");
    }

    #[test]
    fn cross_site_checks() {
        let host = Some("127.0.0.1:8080");
        // Fetch metadata decides when present, whatever Origin says.
        assert!(!cross_site(Some("none"), None, host));
        assert!(cross_site(Some("same-site"), None, host));
        assert!(cross_site(
            Some("cross-site"),
            Some("http://127.0.0.1:8080"),
            host
        ));
        // Origin against Host otherwise.
        assert!(!cross_site(None, Some("http://127.0.0.1:8080"), host));
        assert!(!cross_site(
            None,
            Some("http://LOCALHOST:8080"),
            Some("localhost:8080")
        ));
        assert!(cross_site(None, Some("http://127.0.0.1:9999"), host));
        assert!(cross_site(None, Some("null"), host));
        assert!(cross_site(None, Some("http://127.0.0.1:8080"), None));
    }

    #[test]
    fn layout_escapes_what_it_is_given() {
        let frame = Frame {
            user: Some("<u>".to_owned()),
            notice: Some("<n>".to_owned()),
            csrf_token: Some("<k>".to_owned()),
        };
        let html = layout("<t>", &frame, "<p>body</p>");
        for escaped in ["&lt;t&gt;", "&lt;u&gt;", "&lt;n&gt;", "&lt;k&gt;"] {
            assert!(html.contains(escaped), "{escaped}");
        }
        assert!(html.contains("<p>body</p>"));
        for raw in ["<t>", "<u>", "<n>", "<k>"] {
            assert!(!html.contains(raw), "{raw}");
        }
        assert!(layout("x", &Frame::default(), "").contains("id=\"sign-in-link\""));
    }

    #[test]
    fn every_form_posts_the_token_and_no_element_has_inline_style() {
        let frame = Frame {
            user: Some("alice".to_owned()),
            notice: None,
            csrf_token: Some("tok".to_owned()),
        };
        let html = layout("x", &frame, &login_form("tok", Some("e")));
        assert_eq!(
            html.matches("<form").count(),
            html.matches(&token_field("tok")).count(),
            "{html}"
        );
        assert!(html.contains("<meta name=\"csrf-token\" content=\"tok\">"));
        assert!(html.contains("<link rel=\"stylesheet\" href=\"/style.css\">"));
        assert!(!html.contains("style=\""), "the CSP allows no inline style");
        assert!(!layout("x", &Frame::default(), "").contains("csrf-token"));
    }
}
