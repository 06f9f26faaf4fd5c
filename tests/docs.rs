//! Public documentation speaks to crate users: it cites RFCs and the crate's own items, never
//! the requirement IDs of the project's spec checklist (`AZ-07`, `VAL-08`, …), which a user
//! cannot look up. Tests and private comments may keep them.

use std::{fs, path::Path};

/// The checklist's ID prefixes.
const PREFIXES: [&str; 14] = [
    "AUTH", "AZ", "C", "DPOP", "ERR", "FAPI", "JAR", "MD", "OK", "P1", "PAR", "SEC", "URI", "VAL",
];

/// Files whose `//!` documentation is public (the crate root and the public modules).
const PUBLIC_MODULES: [&str; 7] = [
    "lib.rs",
    "axum.rs",
    "client/mod.rs",
    "metrics.rs",
    "store/mod.rs",
    "store/test_suite.rs",
    "trace.rs",
];

fn cites_checklist(line: &str) -> bool {
    if line.contains("spec-checklist") {
        return true;
    }
    let bytes = line.as_bytes();
    PREFIXES.iter().any(|prefix| {
        line.match_indices(&format!("{prefix}-"))
            .any(|(at, found)| {
                let before = at.checked_sub(1).map(|i| bytes[i]);
                let after = bytes.get(at + found.len());
                !before.is_some_and(|b| b.is_ascii_alphanumeric())
                    && after.is_some_and(u8::is_ascii_digit)
            })
    })
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Doc lines that document a public item: the `///` block right above a `pub` item (not
/// `pub(crate)`), and `//!` lines of the public modules.
fn public_doc_lines(relative: &str, text: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    let mut block: Vec<(usize, &str)> = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("//!") {
            if PUBLIC_MODULES.contains(&relative) {
                found.push((n + 1, trimmed.to_owned()));
            }
        } else if trimmed.starts_with("///") {
            block.push((n + 1, trimmed));
        } else if trimmed.starts_with("#[") || trimmed.is_empty() && !block.is_empty() {
            // Attributes between the docs and the item.
        } else {
            if trimmed.starts_with("pub ") {
                found.extend(block.iter().map(|(n, l)| (*n, (*l).to_owned())));
            }
            block.clear();
        }
    }
    found
}

#[test]
fn public_docs_cite_no_checklist_ids() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut offenders = Vec::new();
    for path in files {
        let relative = path
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        if relative.ends_with("tests.rs") {
            continue;
        }
        let text = fs::read_to_string(&path).unwrap();
        for (line, doc) in public_doc_lines(&relative, &text) {
            if cites_checklist(&doc) {
                offenders.push(format!("src/{relative}:{line}: {doc}"));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "checklist IDs in public docs:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn the_check_finds_ids_and_spares_other_words() {
    assert!(cites_checklist("/// One-time use (URI-03)."));
    assert!(cites_checklist("/// See spec-checklist."));
    assert!(cites_checklist("/// FAPI-10 and C-1"));
    for fine in [
        "/// SHA-256 digests",
        "/// P-256 keys",
        "/// RFC 9126 §2",
        "/// PAR-style",
        "/// ABC-1",
    ] {
        assert!(!cites_checklist(fine), "{fine}");
    }
    let docs = public_doc_lines(
        "x.rs",
        "/// Private (AZ-05).\npub(crate) fn a() {}\n/// Public (AZ-05).\n#[must_use]\npub fn b() {}\n",
    );
    assert_eq!(docs, [(3, "/// Public (AZ-05).".to_owned())]);
}
