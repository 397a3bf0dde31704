use sessionkit::SessionData;

#[derive(SessionData, Default, serde::Serialize, serde::Deserialize)]
struct User {
    #[header("X-User-Id")]
    user_id: Option<u64>,
    #[header("x-user-id")]
    other_id: Option<u64>,
    #[header("X_User_Id")]
    third_id: Option<u64>,
    #[header("X.User.Id")]
    fourth_id: Option<u64>,
}

fn main() {}
