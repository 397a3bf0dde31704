//! Per-field MessagePack encode/decode, a whole derived struct field by
//! field, and header mapping.

use divan::{black_box, Bencher};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use session_bench::fixture::{encoded_fields, Gateway};
use sessionkit::codec::{decode_value, encode_value};
use sessionkit::{HeaderMapping, SessionData};

fn main() {
    divan::main();
}

/// A nested struct stored in one field (encoded as a map keyed by field name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    name: String,
    email: String,
    age: u32,
    roles: Vec<String>,
    address: Address,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Address {
    city: String,
    zip: String,
}

fn profile() -> Profile {
    Profile {
        name: "Ada Lovelace".to_owned(),
        email: "ada@example.com".to_owned(),
        age: 36,
        roles: vec!["admin".to_owned(), "billing".to_owned()],
        address: Address {
            city: "London".to_owned(),
            zip: "W1".to_owned(),
        },
    }
}

fn cart() -> Vec<String> {
    (1..=5).map(|i| format!("sku-{i:04}")).collect()
}

/// Encodes into a buffer reused across iterations (cleared, not reallocated),
/// as a commit does for each changed field.
fn bench_encode<V: Serialize + Sync>(bencher: Bencher, value: V) {
    let mut out = Vec::with_capacity(256);
    bencher.bench_local(|| {
        out.clear();
        encode_value(black_box(&value), &mut out).expect("plain serde types encode");
        black_box(out.len())
    });
}

fn bench_decode<V: Serialize + DeserializeOwned>(bencher: Bencher, value: V) {
    let mut bytes = Vec::new();
    encode_value(&value, &mut bytes).expect("plain serde types encode");
    bencher.bench(|| decode_value::<V>(black_box(&bytes)).expect("round trip"));
}

mod encode {
    use super::*;

    #[divan::bench]
    fn u32(bencher: Bencher) {
        bench_encode(bencher, 123_456u32);
    }

    #[divan::bench]
    fn string_19b(bencher: Bencher) {
        bench_encode(bencher, "Bearer demo-token-1".to_owned());
    }

    #[divan::bench]
    fn vec_string_5(bencher: Bencher) {
        bench_encode(bencher, cart());
    }

    #[divan::bench]
    fn nested_struct(bencher: Bencher) {
        bench_encode(bencher, profile());
    }
}

mod decode {
    use super::*;

    #[divan::bench]
    fn u32(bencher: Bencher) {
        bench_decode(bencher, 123_456u32);
    }

    #[divan::bench]
    fn string_19b(bencher: Bencher) {
        bench_decode(bencher, "Bearer demo-token-1".to_owned());
    }

    #[divan::bench]
    fn vec_string_5(bencher: Bencher) {
        bench_decode(bencher, cart());
    }

    #[divan::bench]
    fn nested_struct(bencher: Bencher) {
        bench_decode(bencher, profile());
    }
}

/// The derived `Gateway` struct (5 fields), every field in turn: what a
/// full save and a load do.
mod gateway_struct {
    use super::*;

    /// `encode_field` for each of the 5 fields, into one reused buffer.
    #[divan::bench]
    fn encode_all_fields(bencher: Bencher) {
        let data = Gateway::typical();
        let mut out = Vec::with_capacity(256);
        bencher.bench_local(|| {
            let data = black_box(&data);
            for index in 0..Gateway::FIELDS.len() {
                out.clear();
                data.encode_field(index, &mut out)
                    .expect("the fixture encodes");
                black_box(&out);
            }
        });
    }

    /// `decode_field` for each of the 5 fields into a default struct.
    #[divan::bench]
    fn decode_all_fields(bencher: Bencher) {
        let fields = encoded_fields(&Gateway::typical());
        bencher.bench(|| {
            let mut data = Gateway::default();
            for (index, (_, bytes)) in black_box(&fields).iter().enumerate() {
                data.decode_field(index, bytes)
                    .expect("the fixture decodes");
            }
            data
        });
    }
}

/// `HeaderMapping::from_derive().render(..)` for the gateway's two mapped
/// headers (`X-User-Id`, `Authorization`).
mod header_mapping {
    use super::*;

    /// Rendering both headers of a logged-in session (built once).
    #[divan::bench]
    fn render(bencher: Bencher) {
        let mapping = HeaderMapping::<Gateway>::from_derive();
        let data = Gateway::typical();
        bencher.bench(|| {
            let mut total = 0usize;
            mapping.render(black_box(&data), |name, value| {
                total += name.len() + value.len();
            });
            total
        });
    }

    /// Rendering an anonymous session: both fields `None`, nothing emitted.
    #[divan::bench]
    fn render_empty(bencher: Bencher) {
        let mapping = HeaderMapping::<Gateway>::from_derive();
        let data = Gateway::default();
        bencher.bench(|| {
            let mut count = 0usize;
            mapping.render(black_box(&data), |_, _| count += 1);
            count
        });
    }

    /// Building the mapping from the derive attributes (done once per app).
    #[divan::bench]
    fn from_derive() -> HeaderMapping<Gateway> {
        HeaderMapping::<Gateway>::from_derive()
    }
}
