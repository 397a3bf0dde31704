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

mod renamed {
    extern crate sessionkit as sk;

    // The stub impl uses the `crate` path too: only the shape error shows.
    #[derive(sk::SessionData)]
    #[session(crate = "sk")]
    enum Renamed {
        A,
    }
}
