//! The web app's pure parts: HTML rendering with escaping, the device label
//! shown on "your devices", the time format, and the cross-site check of
//! state-changing requests. No I/O here; the handlers in `webapp.rs` call it.

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
/// victim's cookie. With `SameSite=Lax` cookies this is the second line of
/// defence; it needs no token in every form.
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

/// A whole page: the layout, the navigation for `user` (signed in or not),
/// an optional notice, and `body` (already HTML).
#[must_use]
pub fn layout(title: &str, user: Option<&str>, notice: Option<&str>, body: &str) -> String {
    let mut html = String::with_capacity(body.len() + 1024);
    let _ = write!(
        html,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{} · sessionkit shop</title></head><body>\n<nav>\
         <a href=\"/\">Home</a> · <a href=\"/cart\">Cart</a> · \
         <a href=\"/parallel\">Parallel requests</a>",
        escape(title)
    );
    match user {
        Some(user) => {
            let _ = write!(
                html,
                " · <a href=\"/devices\">Your devices</a> · \
                 <span id=\"user\">Signed in as <b>{}</b></span> \
                 <form method=\"post\" action=\"/logout\" style=\"display:inline\">\
                 <button id=\"sign-out\" type=\"submit\">Sign out</button></form>",
                escape(user)
            );
        }
        None => html.push_str(" · <a id=\"sign-in-link\" href=\"/login\">Sign in</a>"),
    }
    html.push_str("</nav>\n");
    if let Some(notice) = notice {
        let _ = writeln!(
            html,
            "<p id=\"notice\" role=\"status\">{}</p>",
            escape(notice)
        );
    }
    let _ = write!(html, "<h1>{}</h1>\n{body}\n</body></html>\n", escape(title));
    html
}

/// The sign-in form, with `error` above it when the last attempt failed.
#[must_use]
pub fn login_form(error: Option<&str>) -> String {
    let mut html = String::new();
    if let Some(error) = error {
        let _ = write!(html, "<p id=\"error\" role=\"alert\">{}</p>", escape(error));
    }
    html.push_str(
        "<form id=\"login\" method=\"post\" action=\"/login\">\
         <label>User <input id=\"username\" name=\"username\" autocomplete=\"username\" required></label> \
         <label>Password <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label> \
         <label><input id=\"remember\" name=\"remember\" type=\"checkbox\" value=\"on\"> Remember me for 30 days</label> \
         <button id=\"sign-in\" type=\"submit\">Sign in</button></form>\
         <p>Demo accounts: <code>alice</code> / <code>wonderland</code>, <code>bob</code> / <code>builder</code>.</p>",
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
        let html = layout("<t>", Some("<u>"), Some("<n>"), "<p>body</p>");
        assert!(
            html.contains("&lt;t&gt;") && html.contains("&lt;u&gt;") && html.contains("&lt;n&gt;")
        );
        assert!(html.contains("<p>body</p>"));
        assert!(!html.contains("<t>") && !html.contains("<u>") && !html.contains("<n>"));
        assert!(layout("x", None, None, "").contains("id=\"sign-in-link\""));
    }
}
