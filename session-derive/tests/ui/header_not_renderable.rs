use sessionkit::SessionData;

#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
struct Profile {
    name: String,
}

#[derive(SessionData, Default, serde::Serialize, serde::Deserialize)]
struct User {
    #[header("X-Cart")]
    cart: Vec<String>,
    #[header("X-Profile")]
    profile: Profile,
    // Without `#[header]` any type is fine: a runtime map is checked at start-up.
    unmapped: Vec<String>,
}

fn main() {}
