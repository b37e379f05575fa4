//! `#[with_messages]` and `view_of!` at compile time: every accepted form compiles and
//! runs (`ui-pass/`), every misuse fails with its error at the user's own tokens (`ui/`,
//! one case per file with its `.stderr`).
//!
//! Regenerate the snapshots with `TRYBUILD=overwrite cargo test -p messages-macros --test ui`
//! (see DEVELOPMENT.md), then review each `.stderr`.
//!
//! The error of a handler built without any framework feature cannot be a case here (the
//! features of a build are unified, and these cases need `axum`): `tests/no_framework.rs`
//! checks it, against `tests/no-framework/lib.stderr`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui-pass/*.rs");
    t.compile_fail("tests/ui/*.rs");
}
