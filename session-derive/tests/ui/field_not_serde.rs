use sessionkit::SessionData;

#[derive(Clone, Default)]
struct Opaque;

#[derive(SessionData, Default)]
struct User {
    opaque: Opaque,
}

fn main() {}
