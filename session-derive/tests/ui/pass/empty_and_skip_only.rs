use sessionkit::SessionData;

#[derive(SessionData, Default)]
struct Empty {}

#[derive(SessionData, Default)]
struct OnlySkipped {
    #[session(skip)]
    cache: std::collections::HashMap<String, String>,
}

fn main() {
    assert!(Empty::FIELDS.is_empty());
    assert!(OnlySkipped::FIELDS.is_empty());
    assert!(!Empty::header_capable(0));
}
