//! Every name `Session` reserves is refused by the derive: the UI test
//! `tests/ui/reserved_accessor.rs` has a field whose accessors include it,
//! and its `.stderr` pins one error per name. The list itself lives next to
//! `Session` in the runtime (`sessionkit::__private::RESERVED_NAMES`).

#[test]
fn every_reserved_name_has_a_field_in_the_ui_test() {
    let source = include_str!("ui/reserved_accessor.rs");
    let stderr = include_str!("ui/reserved_accessor.stderr");
    let fields: Vec<&str> = source
        .lines()
        .filter_map(|line| line.trim().strip_suffix(": u8,"))
        .collect();
    let accessors = |field: &str| {
        [
            field.to_owned(),
            format!("with_{field}"),
            format!("set_{field}"),
            format!("update_{field}"),
            format!("take_{field}"),
            format!("remove_{field}"),
        ]
    };
    for name in sessionkit::__private::RESERVED_NAMES {
        assert!(
            fields
                .iter()
                .any(|f| accessors(f).iter().any(|a| a == name)),
            "no field of tests/ui/reserved_accessor.rs gets the accessor `{name}`: add one"
        );
        assert!(
            stderr.contains(&format!("clashes with `Session::{name}`")),
            "tests/ui/reserved_accessor.stderr has no error for `{name}`"
        );
    }
}
