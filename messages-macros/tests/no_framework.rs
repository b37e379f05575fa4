//! Without a framework feature of `messages-core`, a `#[with_messages]` free function is
//! one compile error, at its attribute, naming the feature to enable.
//!
//! Not a trybuild case: cargo unifies features in a build, and this workspace (under
//! `--all-features` too) always turns `messages-core/axum` on. So the test checks a small
//! crate of its own, `tests/no-framework/lib.rs`, in a project under `target/tmp/` that
//! depends on `messages-core` (by path, `default-features = false, features = ["macros"]`)
//! and nothing else, with its own `[workspace]` and target directory (cached between runs),
//! and the workspace's `Cargo.lock` (same versions, `--offline`). Its errors are compared
//! with `tests/no-framework/lib.stderr`; `TRYBUILD=overwrite` rewrites that file too.

#![allow(clippy::expect_used)]

use std::fs;
use std::path::Path;
use std::process::Command;

#[test]
fn a_handler_without_a_framework_is_one_error() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = here.parent().expect("the workspace");
    let fixture = here.join("tests/no-framework");
    let project = Path::new(env!("CARGO_TARGET_TMPDIR")).join("messages-macros-no-framework");
    fs::create_dir_all(project.join("src")).expect("the project directory");

    let core = workspace.join("messages-core");
    let manifest = format!(
        r#"[package]
name = "no-framework"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
messages-core = {{ path = {core:?}, default-features = false, features = ["macros"] }}

[workspace]
"#,
        core = core.display().to_string(),
    );
    write_if_changed(&project.join("Cargo.toml"), &manifest);
    let lib = fs::read_to_string(fixture.join("lib.rs")).expect("the fixture");
    write_if_changed(&project.join("src/lib.rs"), &lib);
    if let Ok(lock) = fs::read_to_string(workspace.join("Cargo.lock")) {
        write_if_changed(&project.join("Cargo.lock"), &lock);
    }

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(&project)
        .args([
            "check",
            "--offline",
            "--quiet",
            "--color",
            "never",
            "--target-dir",
        ])
        .arg(project.join("target"))
        .output()
        .expect("cargo runs");
    let actual = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the fixture compiled:\n{actual}");

    let snapshot = fixture.join("lib.stderr");
    if std::env::var_os("TRYBUILD").is_some_and(|v| v == "overwrite") {
        fs::write(&snapshot, actual.as_bytes()).expect("write the snapshot");
        return;
    }
    let expected = fs::read_to_string(&snapshot).unwrap_or_default();
    assert!(
        actual == expected,
        "`cargo check` of tests/no-framework/lib.rs without a framework feature:\n\
         EXPECTED (tests/no-framework/lib.stderr):\n{expected}\nACTUAL:\n{actual}\n\
         If the actual output is right, rerun with TRYBUILD=overwrite."
    );
}

/// Leaves the file (and its modification time) alone when it already holds `contents`.
fn write_if_changed(path: &Path, contents: &str) {
    if fs::read_to_string(path).ok().as_deref() != Some(contents) {
        fs::write(path, contents).expect("write");
    }
}
