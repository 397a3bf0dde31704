use sessionkit::SessionData;

// `&'static str` renders as a header but cannot be stored: it does not
// deserialize from stored bytes. Use `String` or `Cow<'static, str>`.
#[derive(SessionData, Default)]
struct User {
    #[header("X-Name")]
    name: &'static str,
}

fn main() {}
