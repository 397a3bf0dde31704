//! Compile-time errors, one file per rule, with the caret pinned in the
//! `.stderr` next to it. Run with `TRYBUILD=overwrite` to regenerate after a
//! deliberate change, then read every diff. The expected output is that of
//! the pinned stable toolchain.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
