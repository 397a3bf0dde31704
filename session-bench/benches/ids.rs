//! Session id generation and validation.

use divan::{black_box, Bencher};
use sessionkit::id::{Base64Url128, IdGenerator, SessionId, UuidV4};

fn main() {
    divan::main();
}

mod generate {
    use super::*;

    /// The default generator: 16 bytes from the OS (`getrandom`), hyphenated UUID v4.
    #[divan::bench]
    fn uuid_v4() -> SessionId {
        UuidV4.generate().expect("the OS random source works")
    }

    /// 16 bytes from the OS as 22 characters of base64url.
    #[divan::bench]
    fn base64url_128() -> SessionId {
        Base64Url128.generate().expect("the OS random source works")
    }
}

mod parse {
    use super::*;

    fn bench_parse(bencher: Bencher, raw: &str) {
        bencher.bench(|| SessionId::parse(black_box(raw)));
    }

    /// A well-formed UUID as sent back in a cookie.
    #[divan::bench]
    fn good_uuid(bencher: Bencher) {
        bench_parse(bencher, "3f1c2a9e-6f0b-4c1e-9a57-0b7e6c1d2e4f");
    }

    /// 127 valid characters, then a `{`: the whole id is scanned before it is refused.
    #[divan::bench]
    fn hostile_bad_char_at_end(bencher: Bencher) {
        let raw = format!("{}{{", "a".repeat(127));
        bench_parse(bencher, &raw);
    }

    /// A 4 KiB cookie value: refused on its length without a scan.
    #[divan::bench]
    fn hostile_oversized(bencher: Bencher) {
        bench_parse(bencher, &"A".repeat(4096));
    }

    /// Path traversal and braces early in the id.
    #[divan::bench]
    fn hostile_traversal(bencher: Bencher) {
        bench_parse(bencher, "{evil}/../../etc/passwd");
    }
}
