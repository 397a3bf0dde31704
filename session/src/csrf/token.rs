//! Tokens: a per-session secret, masked with a fresh one-time pad for every
//! token handed out, so no two tokens are equal byte for byte (a response
//! compressed with a secret in it must not leak it, BREACH). Unmasking and
//! comparison take constant time.

use base64::Engine as _;
use subtle::ConstantTimeEq;

use crate::id::GenerateError;

/// The secret's length in bytes (256 bits).
pub(crate) const SECRET_LEN: usize = 32;

/// The length of a token: base64url (no padding) of pad ‖ pad ⊕ secret.
pub(crate) const TOKEN_LEN: usize = (2 * SECRET_LEN * 4).div_ceil(3);

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A session's secret: never sent to the client, only masked.
pub(crate) type Secret = [u8; SECRET_LEN];

/// A new secret from the OS random source (the one session ids come from).
pub(crate) fn new_secret() -> Result<Secret, GenerateError> {
    let mut secret = [0u8; SECRET_LEN];
    getrandom::fill(&mut secret).map_err(GenerateError::Os)?;
    Ok(secret)
}

/// A token for `secret`, masked with a fresh random pad.
pub(crate) fn issue(secret: &Secret) -> Result<String, GenerateError> {
    let mut pad = [0u8; SECRET_LEN];
    getrandom::fill(&mut pad).map_err(GenerateError::Os)?;
    Ok(mask(secret, &pad))
}

/// `secret` masked with `pad`: base64url(pad ‖ pad ⊕ secret).
pub(crate) fn mask(secret: &Secret, pad: &[u8; SECRET_LEN]) -> String {
    let mut raw = [0u8; 2 * SECRET_LEN];
    raw[..SECRET_LEN].copy_from_slice(pad);
    for (i, (p, s)) in pad.iter().zip(secret).enumerate() {
        raw[SECRET_LEN + i] = p ^ s;
    }
    B64.encode(raw)
}

/// The secret a token was masked from; `None` when the token is not one
/// (wrong length or alphabet).
pub(crate) fn unmask(token: &str) -> Option<Secret> {
    if token.len() != TOKEN_LEN {
        return None;
    }
    let mut raw = [0u8; 2 * SECRET_LEN];
    let written = B64.decode_slice(token, &mut raw).ok()?;
    if written != raw.len() {
        return None;
    }
    let mut secret = [0u8; SECRET_LEN];
    for (i, out) in secret.iter_mut().enumerate() {
        *out = raw[i] ^ raw[SECRET_LEN + i];
    }
    Some(secret)
}

/// Whether `token` was masked from `secret`, compared in constant time.
pub(crate) fn verifies(token: &str, secret: &[u8]) -> bool {
    match unmask(token) {
        Some(unmasked) => bool::from(unmasked.ct_eq(secret)),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_masked_per_call_and_verify() {
        let secret = new_secret().unwrap();
        let a = issue(&secret).unwrap();
        let b = issue(&secret).unwrap();
        assert_ne!(a, b, "masked per call");
        assert_eq!(a.len(), TOKEN_LEN);
        assert!(verifies(&a, &secret) && verifies(&b, &secret));
        let other = new_secret().unwrap();
        assert!(!verifies(&a, &other));
    }

    #[test]
    fn malformed_tokens_never_verify() {
        let secret = [7u8; SECRET_LEN];
        let good = mask(&secret, &[1u8; SECRET_LEN]);
        assert!(verifies(&good, &secret));
        assert!(!verifies("", &secret));
        assert!(!verifies(&good[1..], &secret));
        assert!(!verifies(&format!("{good}A"), &secret));
        let mut bad = good.clone();
        bad.replace_range(0..1, "+");
        assert!(!verifies(&bad, &secret));
        // A wrong-length stored secret never matches.
        assert!(!verifies(&good, &secret[..16]));
    }

    proptest::proptest! {
        #[test]
        fn mask_then_unmask_gives_the_secret_back(
            secret in proptest::array::uniform32(proptest::num::u8::ANY),
            pad in proptest::array::uniform32(proptest::num::u8::ANY),
        ) {
            let token = mask(&secret, &pad);
            proptest::prop_assert_eq!(token.len(), TOKEN_LEN);
            proptest::prop_assert_eq!(unmask(&token), Some(secret));
            proptest::prop_assert!(verifies(&token, &secret));
        }

        #[test]
        fn a_token_of_another_secret_never_verifies(
            secret in proptest::array::uniform32(proptest::num::u8::ANY),
            other in proptest::array::uniform32(proptest::num::u8::ANY),
            pad in proptest::array::uniform32(proptest::num::u8::ANY),
        ) {
            proptest::prop_assume!(secret != other);
            proptest::prop_assert!(!verifies(&mask(&other, &pad), &secret));
        }

        #[test]
        fn two_pads_give_two_tokens(
            secret in proptest::array::uniform32(proptest::num::u8::ANY),
            a in proptest::array::uniform32(proptest::num::u8::ANY),
            b in proptest::array::uniform32(proptest::num::u8::ANY),
        ) {
            proptest::prop_assume!(a != b);
            proptest::prop_assert_ne!(mask(&secret, &a), mask(&secret, &b));
        }
    }

    #[test]
    fn a_zero_pad_would_expose_the_secret_so_pads_are_random() {
        // mask() with a zero pad is the secret itself in clear: issue()
        // never uses a fixed pad.
        let secret = [9u8; SECRET_LEN];
        assert_ne!(issue(&secret).unwrap(), mask(&secret, &[0; SECRET_LEN]));
    }
}
