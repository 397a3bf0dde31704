//! The scale run (`SCALE=1 scripts/bench.sh`): which sessions a server is
//! filled with, which cookie reaches each of them, and the settings of the
//! run, as pure functions shared by `bench-server` (which fills its store
//! before it serves, `BENCH_PRELOAD=N`) and `bench-run` (which writes the
//! cookies to a file the `wrk` script picks from at random).
//!
//! Session `i` (`0 <= i < N`) has the id [`sessionkit_id`]`(i)` in the
//! sessionkit modes and [`tower_id`]`(i)` in the tower-sessions modes, and
//! holds `visits = 0` when the server starts.

use anyhow::{ensure, Context, Result};

/// The numbers of live sessions measured by default.
pub const DEFAULT_SIZES: [u64; 3] = [1_000, 100_000, 1_000_000];

/// The numbers of `wrk` connections measured by default.
pub const DEFAULT_CONNECTIONS: [u32; 3] = [1, 32, 256];

/// The most sessions a scale run may preload.
pub const MAX_SIZE: u64 = 10_000_000;

/// The id of preloaded session `index` in the sessionkit modes: a valid
/// [`sessionkit::id::SessionId`] (24 characters of `a-z 0-9 -`), distinct per
/// index.
pub fn sessionkit_id(index: u64) -> String {
    format!("bench-scale-{index:012}")
}

/// The id of preloaded session `index` in the tower-sessions modes
/// (`tower_sessions::session::Id` holds an `i128`); never 0.
pub fn tower_id(index: u64) -> i128 {
    i128::from(index) + 1
}

/// The `Cookie` header value that names preloaded session `index`, given
/// the mode's cookie name: sessionkit's cookie holds the id; tower-sessions'
/// holds its `Id` in base64url.
pub fn cookie(tower: bool, cookie_name: &str, index: u64) -> String {
    if tower {
        let id = tower_sessions::session::Id(tower_id(index));
        format!("{cookie_name}={id}")
    } else {
        format!("{cookie_name}={}", sessionkit_id(index))
    }
}

/// Parses a comma-separated list such as `SCALE_SIZES=1000,100000` (empty
/// items are skipped); every value must lie in `range`.
pub fn parse_list<T>(name: &str, text: &str, range: std::ops::RangeInclusive<T>) -> Result<Vec<T>>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    let mut values = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let value: T = item
            .replace('_', "")
            .parse()
            .with_context(|| format!("{name}: {item:?} is not a number"))?;
        ensure!(
            range.contains(&value),
            "{name}: {value} is outside {}..={}",
            range.start(),
            range.end()
        );
        values.push(value);
    }
    ensure!(!values.is_empty(), "{name} lists no value");
    Ok(values)
}

/// `1k`, `100k`, `1M`: how the report names a number of sessions.
pub fn size_label(size: u64) -> String {
    if size >= 1_000_000 && size.is_multiple_of(1_000_000) {
        format!("{}M", size / 1_000_000)
    } else if size >= 1_000 && size.is_multiple_of(1_000) {
        format!("{}k", size / 1_000)
    } else {
        size.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessionkit_ids_are_valid_and_distinct() {
        let a = sessionkit_id(0);
        let b = sessionkit_id(999_999);
        assert_ne!(a, b);
        assert!(sessionkit::id::SessionId::parse(&a).is_ok());
        assert!(sessionkit::id::SessionId::parse(&b).is_ok());
        assert_eq!(a.len(), b.len());
    }

    #[test]
    fn tower_cookies_hold_the_base64_id() {
        assert_eq!(tower_id(0), 1);
        let cookie = cookie(true, "id", 0);
        let value = cookie.strip_prefix("id=").unwrap();
        let parsed: tower_sessions::session::Id = value.parse().unwrap();
        assert_eq!(parsed.0, 1);
        assert_eq!(cookie_value_count(&cookie), 1);
        assert_eq!(
            super::cookie(false, "session_id", 7),
            "session_id=bench-scale-000000000007"
        );
    }

    fn cookie_value_count(cookie: &str) -> usize {
        cookie.matches('=').count()
    }

    #[test]
    fn lists_parse_and_check_their_range() {
        assert_eq!(
            parse_list::<u64>("S", "1000, 100_000,,1000000", 1..=MAX_SIZE).unwrap(),
            vec![1_000, 100_000, 1_000_000]
        );
        assert!(parse_list::<u64>("S", "0", 1..=MAX_SIZE).is_err());
        assert!(parse_list::<u32>("C", "x", 1..=1024).is_err());
        assert!(parse_list::<u32>("C", " , ", 1..=1024).is_err());
    }

    #[test]
    fn sizes_have_short_labels() {
        assert_eq!(size_label(1_000), "1k");
        assert_eq!(size_label(100_000), "100k");
        assert_eq!(size_label(1_000_000), "1M");
        assert_eq!(size_label(1_500), "1500");
    }
}
