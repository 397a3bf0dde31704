use sessionkit::SessionData;

#[derive(serde::Serialize, serde::Deserialize)]
struct Token(String);

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Cart(Vec<String>);

#[derive(SessionData, serde::Serialize, serde::Deserialize)]
struct User {
    token: Token,
    cart: Cart,
    // Skipped fields are not stored and get no accessors: no requirement.
    #[session(skip)]
    scratch: Token,
}

impl Default for User {
    fn default() -> Self {
        Self {
            token: Token(String::new()),
            cart: Cart::default(),
            scratch: Token(String::new()),
        }
    }
}

fn main() {}
