//! Tidy checks: conventions the project keeps, checked by a test rather than by goodwill.
//!
//! - every Rust file opens with a `//!` paragraph saying what it is for;
//! - no text cites a document that is not in the repository (every `*.md` a source file names exists, and the
//!   product brief, which lives outside, is never cited);
//! - every lint suppression says why (`reason = "…"`), so a stale one is found by reading it, and `#[expect]`
//!   (which fails the build once it is no longer needed) is preferred to `#[allow]`.
//!
//! It reads files only, from the checkout's tracked tree (`git ls-files`), and changes nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The checkout's tracked files with one of `extensions`.
fn tracked(root: &Path, extensions: &[&str]) -> Vec<PathBuf> {
    let out = Command::new("git").arg("ls-files").current_dir(root).output().expect("git ls-files runs");
    assert!(out.status.success(), "git ls-files: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|p| extensions.iter().any(|e| p.ends_with(e)))
        .map(|p| root.join(p))
        .filter(|p| p.exists())
        .collect()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn root() -> PathBuf {
    xtask::util::root()
}

#[test]
fn every_rust_file_opens_with_a_module_doc() {
    let root = root();
    let missing: Vec<String> = tracked(&root, &[".rs"])
        .into_iter()
        .filter(|p| !read(p).starts_with("//!"))
        .map(|p| p.strip_prefix(&root).unwrap_or(&p).display().to_string())
        .collect();
    assert!(missing.is_empty(), "these files do not open with a `//!` paragraph: {missing:?}");
}

/// The `*.md` paths a text mentions (`docs/etcd.md`, `ARCHITECTURE.md`), as written.
fn markdown_mentions(text: &str) -> Vec<String> {
    mentions(text, ".md")
}

/// The paths ending in `suffix` a text mentions, as written.
fn mentions(text: &str, suffix: &str) -> Vec<String> {
    let is_path = |c: char| c.is_ascii_alphanumeric() || "_-./".contains(c);
    let mut found = Vec::new();
    for (at, _) in text.match_indices(suffix) {
        let end = at + suffix.len();
        let after = text[end..].chars().next();
        if after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let start = text[..at].rfind(|c: char| !is_path(c)).map_or(0, |i| i + 1);
        let name = &text[start..end];
        if name.len() > suffix.len() && !name.starts_with('.') {
            found.push(name.to_owned());
        }
    }
    found
}

#[test]
fn no_text_cites_a_document_outside_the_repository() {
    let root = root();
    let brief = ["DESIGN", " §"].concat();
    let mut problems = Vec::new();
    for path in tracked(&root, &[".rs", ".md", ".toml", ".yaml", ".bu", ".service", ".timer", ".env"]) {
        let text = read(&path);
        let shown = path.strip_prefix(&root).unwrap_or(&path).display().to_string();
        if text.contains(&brief) || text.contains(&["DESIGN", ".md"].concat()) {
            problems.push(format!("{shown} cites the product brief, which is not in the repository"));
        }
        // Source paths named in the docs and the code (`core/src/run/gather.rs`) must exist: a move updates them.
        for name in mentions(&text, ".rs") {
            let in_tree = ["core/", "sim/", "xtask/", "bin-"].iter().any(|p| name.starts_with(p));
            if in_tree && !name.contains('*') && !root.join(&name).exists() {
                problems.push(format!("{shown} names {name}, which is not in the repository"));
            }
        }
        if path.extension().is_some_and(|e| e == "rs") {
            for name in markdown_mentions(&text) {
                let here = path.parent().map(|d| d.join(&name));
                if !root.join(&name).exists() && !here.is_some_and(|p| p.exists()) {
                    problems.push(format!("{shown} names {name}, which is not in the repository"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn every_lint_suppression_says_why() {
    let root = root();
    let mut problems = Vec::new();
    for path in tracked(&root, &[".rs"]) {
        let shown = path.strip_prefix(&root).unwrap_or(&path).display().to_string();
        let text = read(&path);
        for (n, line) in text.lines().enumerate() {
            let code = line.trim_start();
            let suppression = ["#[allow(", "#![allow(", "#[expect(", "#![expect("].iter().any(|a| code.starts_with(a));
            // The attribute runs to its closing `)]`, which may be lines further down.
            let start = text.lines().take(n).map(|l| l.len() + 1).sum::<usize>();
            let attribute = text[start..].split(")]").next().unwrap_or_default();
            if suppression && !attribute.contains("reason = \"") {
                problems.push(format!("{shown}:{}: {code}", n + 1));
            }
        }
    }
    assert!(problems.is_empty(), "lint suppressions without `reason = \"…\"`: {problems:#?}");
}

#[test]
fn the_mention_scanner_finds_paths() {
    assert_eq!(markdown_mentions("see `docs/etcd.md`, ARCHITECTURE.md."), ["docs/etcd.md", "ARCHITECTURE.md"]);
    assert!(markdown_mentions("a .md file, x.mdx").is_empty());
}
