use sessionkit::SessionData;

#[derive(SessionData, Default, serde::Serialize, serde::Deserialize)]
struct Wrapper<T> {
    value: T,
}

#[derive(SessionData, Default, serde::Serialize, serde::Deserialize)]
struct Sized<const N: usize> {
    value: u32,
}

fn main() {}
