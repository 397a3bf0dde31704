use sessionkit::SessionData;

#[derive(SessionData)]
enum Choice {
    A,
    B,
}

#[derive(SessionData, Default)]
struct Tuple(u32, String);

#[derive(SessionData, Default)]
struct Unit;

#[derive(SessionData, Default)]
struct Borrowed<'a> {
    name: &'a str,
}

fn main() {}
