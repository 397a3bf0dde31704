use sessionkit::SessionData;

// One field per name in `sessionkit::__private::RESERVED_NAMES`, or one whose
// accessors include it (`key`: `remove_key`; `idle_timeout`: `set_idle_timeout`;
// tests/reserved_names.rs checks that every reserved name is covered here).
#[derive(SessionData, Default, serde::Serialize, serde::Deserialize)]
struct Clashes {
    manager: u8,
    degraded: u8,
    id: u8,
    fresh: u8,
    keys: u8,
    get: u8,
    with: u8,
    set: u8,
    update: u8,
    take: u8,
    once: u8,
    remove: u8,
    key: u8,
    read: u8,
    snapshot: u8,
    replace: u8,
    modify: u8,
    regenerate: u8,
    reset: u8,
    destroy: u8,
    csrf_token: u8,
    idle_timeout: u8,
    use_configured_idle_timeout: u8,
    save: u8,
    clone: u8,
    clone_from: u8,
    to_owned: u8,
    clone_into: u8,
    into: u8,
    try_into: u8,
}

fn main() {}
