//! Configuration: YAML and TOML loading, and every validation error.

use std::time::Duration;

use sessionkit::{Config, ConfigError, KeyLookup, SameSite};

#[test]
fn gateway_reference_yaml_loads_as_is() {
    let yaml = r#"
storage: "ValkeySessionStorage"
keyLookup: "cookie:session_id"
cookieHTTPOnly: true
cookieSecure: false
cookieSameSite: "Lax"
cookieExpiration: 2h
disableAutoRenew: false
autoRenewAfter: 30m
disableSessionForward: false
"#;
    let config: Config = serde_norway::from_str(yaml).unwrap();
    config.validate().unwrap();
    assert_eq!(config.storage.as_deref(), Some("ValkeySessionStorage"));
    assert!(config.cookie_http_only);
    assert_eq!(config.cookie_same_site, SameSite::Lax);
    assert_eq!(config.cookie_expiration, Duration::from_secs(7200));
    assert_eq!(config.auto_renew_after, Duration::from_secs(1800));
}

#[test]
fn toml_loads_too() {
    let toml = r#"
keyLookup = "cookie:sid,header:X-Sid"
cookieSecure = true
cookieSameSite = "none"
idleTimeout = "15m"
absoluteTimeout = "1day"
maxSessionBytes = 4096
maxSessionsPerUser = 5
"#;
    let config: Config = toml::from_str(toml).unwrap();
    config.validate().unwrap();
    assert_eq!(config.key_lookup.to_string(), "cookie:sid,header:X-Sid");
    assert_eq!(config.cookie_same_site, SameSite::None);
    assert_eq!(config.absolute_timeout, Some(Duration::from_secs(86_400)));
    assert_eq!(config.max_session_bytes, 4096);
    assert_eq!(config.max_sessions_per_user, Some(5));
    assert_eq!(
        Config::default().max_sessions_per_user,
        None,
        "unlimited by default"
    );
}

#[test]
fn unknown_keys_are_refused_by_name() {
    let err = serde_norway::from_str::<Config>("cookieSecur: true\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("cookieSecur"), "{err}");
}

#[test]
fn unknown_key_lookup_source_is_refused() {
    let err = serde_norway::from_str::<Config>("keyLookup: \"body:sid\"\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown source"), "{err}");
    assert!(matches!(
        "cookie:sid,body:x".parse::<KeyLookup>(),
        Err(ConfigError::KeyLookup { .. })
    ));
}

fn invalid(yaml: &str) -> ConfigError {
    let config: Config = serde_norway::from_str(yaml).expect("parses");
    config.validate().expect_err("is refused")
}

#[test]
fn each_validation_error_names_the_key() {
    let cases = [
        (
            "idleTimeout: 30m\nabsoluteTimeout: 10m\n",
            "absoluteTimeout (10m) is shorter than idleTimeout (30m)",
        ),
        (
            "keyLookup: \"cookie:__Host-sid\"\n",
            "__Host- prefix, which needs cookieSecure",
        ),
        (
            "keyLookup: \"cookie:__Host-sid\"\ncookieSecure: true\ncookieDomain: example.com\n",
            "must not have a cookieDomain",
        ),
        (
            "keyLookup: \"cookie:__Host-sid\"\ncookieSecure: true\ncookiePath: /app\n",
            "needs cookiePath",
        ),
        ("keyLookup: \"cookie:__Secure-sid\"\n", "__Secure- prefix"),
        (
            "cookieSameSite: None\n",
            "cookieSameSite: None requires cookieSecure",
        ),
        ("idleTimeout: 0s\n", "idleTimeout must be longer than zero"),
        (
            "cookieExpiration: 0s\n",
            "cookieExpiration must be longer than zero",
        ),
        (
            "autoRenewAfter: 0s\n",
            "autoRenewAfter must be longer than zero",
        ),
        (
            "absoluteTimeout: 0s\n",
            "absoluteTimeout must be longer than zero",
        ),
        ("maxSessionBytes: 0\n", "maxSessionBytes"),
        (
            "maxSessionsPerUser: 0\n",
            "maxSessionsPerUser must be at least 1",
        ),
        ("cookiePath: app\n", "cookiePath"),
    ];
    for (yaml, expected) in cases {
        let message = invalid(yaml).to_string();
        assert!(message.contains(expected), "{yaml:?}: {message}");
    }
    let ok: Config =
        serde_norway::from_str("keyLookup: \"cookie:__Host-sid\"\ncookieSecure: true\n").unwrap();
    ok.validate().unwrap();
}

#[test]
fn bad_same_site_is_refused() {
    let err = serde_norway::from_str::<Config>("cookieSameSite: sometimes\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("Strict, Lax, None"), "{err}");
}

#[test]
fn builder_validates() {
    let err = Config::builder()
        .idle_timeout(Duration::from_secs(60))
        .absolute_timeout(Duration::from_secs(30))
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::AbsoluteShorterThanIdle { .. }));
    let err = Config::builder().key_lookup("nope").build().unwrap_err();
    assert!(matches!(err, ConfigError::KeyLookup { .. }));
}
