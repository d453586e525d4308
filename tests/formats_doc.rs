//! `docs/formats.md` is what `plugsync schema --markdown` generates from the schemas in
//! `policy/`: a schema changed without regenerating the page fails here.
//! Regenerate with `cargo run -- schema --markdown > docs/formats.md`.

use std::process::Command;

#[test]
fn docs_formats_md_is_generated_from_the_current_schemas() {
    let output = Command::new(env!("CARGO_BIN_EXE_plugsync"))
        .args(["schema", "--markdown"])
        .output()
        .expect("run plugsync schema --markdown");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let generated = String::from_utf8(output.stdout).expect("utf-8");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/formats.md");
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        generated == checked_in,
        "{} is stale: regenerate it with `cargo run -- schema --markdown > docs/formats.md`",
        path.display()
    );
}

#[test]
fn readme_links_the_format_reference_inside_the_repository() {
    let readme =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).expect("README.md");
    assert!(readme.contains("(docs/formats.md)"), "README links docs/formats.md");
    assert!(!readme.contains("FORMATS.md"), "README points at no formats document outside the repository");
}
