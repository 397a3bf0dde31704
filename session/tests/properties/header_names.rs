//! Header-name folding (`normalize_header_name`, `HeaderMapping::is_mapped`):
//! every spelling a downstream service could take for a mapped name is
//! stripped, and names with different letters or digits never collide.

use proptest::prelude::*;
use sessionkit::adapter::normalize_header_name;
use sessionkit::{HeaderMapConfig, HeaderMapping, SessionData};

use crate::text_from;

#[derive(SessionData, Default)]
struct Mapped {
    user_id: Option<u64>,
}

const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const PUNCTUATION: &str = "!#$%&'*+-.^_`|~";

/// The letters and digits of a header name, in words (some may be empty).
fn words() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(text_from(ALNUM, 6), 1..5)
        .prop_filter("some letter or digit", |w| w.iter().any(|w| !w.is_empty()))
}

/// `n + 1` runs of punctuation: one before each word and one after the last.
fn separators(n: usize) -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(text_from(PUNCTUATION, 2), n + 1..=n + 1)
}

/// `separators[0] words[0] separators[1] words[1] … separators[n]`.
fn join(words: &[String], separators: &[String]) -> String {
    let mut name = String::new();
    for (word, sep) in words.iter().zip(separators) {
        name.push_str(sep);
        name.push_str(word);
    }
    name.push_str(separators.last().map_or("", String::as_str));
    name
}

/// `name` with the case of each letter flipped where `flips` says so.
fn recase(name: &str, flips: &[bool]) -> String {
    name.chars()
        .zip(flips.iter().chain(std::iter::repeat(&false)))
        .map(|(c, &flip)| {
            if flip && c.is_ascii_uppercase() {
                c.to_ascii_lowercase()
            } else if flip {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

/// A mapped name (words joined by `-`, as configured) and a spelling of it:
/// the same words, case flipped at random, any punctuation between them.
fn name_and_spelling() -> impl Strategy<Value = (String, String)> {
    words()
        .prop_flat_map(|words| {
            let n = words.len();
            (
                Just(words),
                separators(n),
                proptest::collection::vec(any::<bool>(), 0..40),
            )
                .prop_map(|(words, seps, flips)| {
                    let canonical: Vec<String> = std::iter::once(String::new())
                        .chain(std::iter::repeat_n("-".to_owned(), words.len() - 1))
                        .chain([String::new()])
                        .collect();
                    let mapped = join(&words, &canonical);
                    let spelling = recase(&join(&words, &seps), &flips);
                    (mapped, spelling)
                })
        })
        .prop_filter("mapped name is a valid header name", |(mapped, _)| {
            sessionkit::adapter::is_valid_header_name(mapped)
        })
}

fn alnum_lower(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_spelling_of_a_mapped_name_is_stripped((mapped, spelling) in name_and_spelling()) {
        prop_assert_eq!(normalize_header_name(&spelling), normalize_header_name(&mapped));
        let map = HeaderMapping::<Mapped>::from_config(&HeaderMapConfig::new([(
            mapped.as_str(),
            "user_id",
        )]))
        .unwrap();
        prop_assert!(map.is_mapped(&spelling), "{} not stripped for {}", spelling, mapped);
    }

    #[test]
    fn names_with_different_letters_or_digits_never_fold_together(
        a in text_from(crate::TOKEN, 12),
        b in text_from(crate::TOKEN, 12),
    ) {
        let same = alnum_lower(&a) == alnum_lower(&b);
        prop_assert_eq!(normalize_header_name(&a) == normalize_header_name(&b), same);
    }

    /// One letter or digit inserted, removed or replaced (not by its other
    /// case) makes another header, which is forwarded untouched.
    #[test]
    fn a_changed_letter_or_digit_is_another_header(
        (mapped, spelling) in name_and_spelling(),
        at in any::<prop::sample::Index>(),
        edit in 0..3u8,
        letter in proptest::sample::select(ALNUM.chars().collect::<Vec<_>>()),
    ) {
        let mut chars: Vec<char> = spelling.chars().collect();
        let alnum: Vec<usize> = (0..chars.len()).filter(|&i| chars[i].is_ascii_alphanumeric()).collect();
        let i = alnum[at.index(alnum.len())];
        match edit {
            0 => chars.insert(i, letter),
            1 => {
                chars.remove(i);
            }
            _ => {
                prop_assume!(!chars[i].eq_ignore_ascii_case(&letter));
                chars[i] = letter;
            }
        }
        let other: String = chars.into_iter().collect();
        let map = HeaderMapping::<Mapped>::from_config(&HeaderMapConfig::new([(
            mapped.as_str(),
            "user_id",
        )]))
        .unwrap();
        prop_assert!(!map.is_mapped(&other), "{} folded onto {}", other, mapped);
    }

    /// The fold is idempotent and yields only lower-case letters and digits.
    #[test]
    fn folding_is_idempotent(name in crate::any_text(24)) {
        let folded = normalize_header_name(&name);
        prop_assert!(folded.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
        prop_assert_eq!(normalize_header_name(&folded), folded);
    }
}
