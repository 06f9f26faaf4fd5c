//! The README's Rust example is examples/axum.rs, which the build compiles: keep them identical.

#[test]
fn readme_example_is_examples_axum() {
    let readme = include_str!("../README.md");
    let start = readme.find("```rust\n").expect("README has a Rust example") + "```rust\n".len();
    let end = start + readme[start..].find("```").expect("closed code block");
    let example = include_str!("../examples/axum.rs");
    assert!(
        example.ends_with(&readme[start..end]),
        "README.md's example differs from examples/axum.rs"
    );
}

#[test]
fn readme_names_the_two_commands() {
    let readme = include_str!("../README.md");
    assert!(readme.contains("cargo run --release --example par_server"));
    assert!(readme.contains("scripts/test"));
    let ci = include_str!("../.ci/run");
    assert!(
        ci.lines().any(|l| l.trim() == "scripts/test"),
        ".ci/run must run the README's test command"
    );
}
