//! The path-check corpus: escape attempts that must all be refused and
//! ordinary paths that must all resolve inside the workspace, plus a
//! property test that no resolved path ever leaves the root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use super::*;

/// `base/` holds the workspace `shop`, a sibling `shop-evil`, another
/// workspace `other`, valor's `data`, and a workspace nested inside `shop`.
struct Fixture {
    _dir: tempfile::TempDir,
    base: PathBuf,
    workspace: Workspace,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let base = std::fs::canonicalize(dir.path()).unwrap();
    let shop = base.join("shop");
    for sub in ["src", "docs with spaces", "ünïcødé", ".ssh", ".git", "nested-ws", "pkg/.aws"] {
        std::fs::create_dir_all(shop.join(sub)).unwrap();
    }
    for sub in ["shop-evil", "other", "data"] {
        std::fs::create_dir_all(base.join(sub)).unwrap();
    }
    std::fs::write(shop.join("src/main.rs"), "fn main() {}").unwrap();
    std::fs::write(shop.join(".ssh/id_rsa"), "secret").unwrap();
    std::fs::write(base.join("shop-evil/loot"), "x").unwrap();
    std::fs::write(base.join("other/secret.txt"), "x").unwrap();
    symlink("/etc", shop.join("etc-link")).unwrap();
    symlink("/etc/passwd", shop.join("passwd-link")).unwrap();
    symlink("../shop-evil", shop.join("evil-link")).unwrap();
    symlink(base.join("other"), shop.join("other-link")).unwrap();
    symlink(base.join("data"), shop.join("data-link")).unwrap();
    symlink("/nonexistent/valor-test/target", shop.join("dangling")).unwrap();
    symlink("src", shop.join("src-link")).unwrap();
    symlink(".ssh", shop.join("keys")).unwrap();
    let forbidden = [base.join("other"), base.join("data"), shop.join("nested-ws")];
    let workspace = Workspace::open("shop", &shop, &forbidden).unwrap();
    Fixture { _dir: dir, base, workspace }
}

#[test]
fn every_escape_attempt_in_the_corpus_is_refused() {
    let f = fixture();
    let base = f.base.display().to_string();
    let long_name = "a".repeat(300);
    let long_path = "a/".repeat(2100);
    let attempts: Vec<String> = vec![
        "..".into(),
        "../".into(),
        "../shop-evil".into(),
        "../shop-evil/loot".into(),
        "../../../../etc/passwd".into(),
        "src/../../shop-evil".into(),
        "src/../../../etc/shadow".into(),
        "./../other/secret.txt".into(),
        "new-dir/../../x".into(),
        "new-dir/../../../etc".into(),
        "a/b/c/../../../../..".into(),
        "/etc/passwd".into(),
        "/etc".into(),
        "/root/.ssh/id_rsa".into(),
        "/".into(),
        "/tmp".into(),
        "/proc/self/environ".into(),
        format!("{base}/shop-evil"),
        format!("{base}/shop-evil/loot"),
        format!("{base}/shop-evil/new-file"),
        format!("{base}/shop/../shop-evil"),
        format!("{base}/other/secret.txt"),
        format!("{base}/data/valor.db"),
        format!("{base}/shop/nested-ws"),
        "nested-ws/file.txt".into(),
        "etc-link".into(),
        "etc-link/passwd".into(),
        "passwd-link".into(),
        "evil-link/loot".into(),
        "evil-link/new-file".into(),
        "other-link/secret.txt".into(),
        "data-link/valor.db".into(),
        "dangling".into(),
        "dangling/child".into(),
        ".ssh".into(),
        ".ssh/id_rsa".into(),
        ".SSH/id_rsa".into(),
        "keys/id_rsa".into(),
        "pkg/.aws/credentials".into(),
        ".gnupg/private".into(),
        ".netrc".into(),
        "src/.git-credentials".into(),
        "src/main.rs\0.txt".into(),
        "\0".into(),
        "src/\nmain.rs".into(),
        "".into(),
        "   ".into(),
        long_name,
        long_path,
        "\u{2025}/etc/passwd".into(),
        "\u{FF0E}\u{FF0E}/secret".into(),
        "src\u{2215}..\u{2215}..".into(),
        "\u{2024}\u{2024}/x".into(),
    ];
    assert!(attempts.len() >= 40);
    for attempt in &attempts {
        let outcome = f.workspace.resolve(attempt);
        assert!(outcome.is_err(), "{attempt:?} was allowed as {outcome:?}");
    }
}

#[test]
fn ordinary_paths_resolve_inside_the_workspace() {
    let f = fixture();
    let root = f.workspace.root().to_path_buf();
    let cases: Vec<(String, PathBuf)> = vec![
        ("src/main.rs".into(), root.join("src/main.rs")),
        ("./src/main.rs".into(), root.join("src/main.rs")),
        ("src/new/deeper/file.rs".into(), root.join("src/new/deeper/file.rs")),
        ("docs with spaces/read me.md".into(), root.join("docs with spaces/read me.md")),
        ("ünïcødé/日本語.txt".into(), root.join("ünïcødé/日本語.txt")),
        ("src/../README.md".into(), root.join("README.md")),
        ("src-link/main.rs".into(), root.join("src/main.rs")),
        (".git/config".into(), root.join(".git/config")),
        (".".into(), root.clone()),
        (root.join("src").display().to_string(), root.join("src")),
        ("a..b/c".into(), root.join("a..b/c")),
    ];
    for (requested, expected) in cases {
        assert_eq!(f.workspace.resolve(&requested), Ok(expected), "{requested:?}");
    }
}

#[test]
fn refusals_say_why() {
    let f = fixture();
    assert_eq!(f.workspace.resolve("../shop-evil"), Err(PathRefusal::Outside));
    assert_eq!(f.workspace.resolve("new/../../x"), Err(PathRefusal::ParentEscape));
    assert_eq!(f.workspace.resolve("dangling"), Err(PathRefusal::DanglingSymlink));
    assert_eq!(f.workspace.resolve(".ssh/id_rsa"), Err(PathRefusal::Sensitive(".ssh".into())));
    assert_eq!(f.workspace.resolve("nested-ws/x"), Err(PathRefusal::Forbidden));
    assert_eq!(f.workspace.resolve("a\0b"), Err(PathRefusal::ControlCharacter));
}

#[test]
fn credential_files_and_folders_are_refused_wherever_they_are() {
    let f = fixture();
    for (path, name) in [
        (".env", ".env"),
        ("app/.env.local", ".env.local"),
        (".ENV.production", ".ENV.production"),
        (".npmrc", ".npmrc"),
        ("deploy/.netrc", ".netrc"),
        (".docker/config.json", ".docker"),
        (".config/gh/hosts.yml", ".config/gh"),
        (".config/gcloud/credentials.db", ".config/gcloud"),
        (".cargo/credentials.toml", ".cargo/credentials.toml"),
        (".aws/credentials", ".aws"),
        (".pypirc", ".pypirc"),
    ] {
        assert_eq!(f.workspace.resolve(path), Err(PathRefusal::Sensitive(name.into())), "{path}");
    }
    // Neighbours that hold no secrets stay reachable.
    for path in [".env.example", ".config/nvim/init.lua", "gh/readme.md", ".cargo/config.toml", "environment.md"] {
        assert!(f.workspace.resolve(path).is_ok(), "{path}");
    }
}

#[test]
fn workspace_roots_in_system_or_forbidden_places_are_refused() {
    let f = fixture();
    assert!(matches!(Workspace::open("etc", Path::new("/etc"), &[]), Err(PathRefusal::Sensitive(_))));
    assert!(matches!(Workspace::open("root", Path::new("/"), &[]), Err(PathRefusal::Sensitive(_))));
    assert!(matches!(Workspace::open("missing", &f.base.join("nope"), &[]), Err(PathRefusal::Unreadable(_))));
    let inside_data = f.base.join("data/ws");
    std::fs::create_dir_all(&inside_data).unwrap();
    assert_eq!(Workspace::open("d", &inside_data, &[f.base.join("data")]), Err(PathRefusal::Forbidden));
    assert!(matches!(Workspace::open("k", &f.base.join("shop/.ssh"), &[]), Err(PathRefusal::Sensitive(_))));
}

#[test]
fn a_workspace_root_given_through_a_symlink_is_canonicalised() {
    let f = fixture();
    let link = f.base.join("shop-link");
    symlink(f.base.join("shop"), &link).unwrap();
    let workspace = Workspace::open("shop", &link, &[]).unwrap();
    assert_eq!(workspace.root(), f.workspace.root());
    assert_eq!(workspace.resolve(&format!("{}/src", link.display())), Ok(f.workspace.root().join("src")));
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("..".to_owned()),
        Just(".".to_owned()),
        Just("src".to_owned()),
        Just("etc-link".to_owned()),
        Just("evil-link".to_owned()),
        Just("other-link".to_owned()),
        Just("src-link".to_owned()),
        Just("dangling".to_owned()),
        Just("nested-ws".to_owned()),
        Just(".ssh".to_owned()),
        Just("shop-evil".to_owned()),
        Just("".to_owned()),
        "[a-z]{1,6}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn no_resolved_path_escapes_the_workspace(segments in proptest::collection::vec(segment(), 1..8), absolute in any::<bool>()) {
        let f = fixture();
        let joined = segments.join("/");
        let requested = if absolute { format!("{}/{joined}", f.base.display()) } else { joined };
        if let Ok(resolved) = f.workspace.resolve(&requested) {
            prop_assert!(resolved.starts_with(f.workspace.root()), "{requested} -> {}", resolved.display());
            let canonical_parent = resolved.ancestors().find_map(|a| std::fs::canonicalize(a).ok()).unwrap();
            prop_assert!(canonical_parent.starts_with(f.workspace.root()), "{requested}");
            prop_assert!(!resolved.starts_with(f.base.join("shop/nested-ws")));
            prop_assert!(!resolved.components().any(|c| c.as_os_str() == ".ssh" || c.as_os_str() == ".."));
        }
    }
}
