//! `send_screenshot` against a directory swapped for an outside symlink in a
//! loop: the file it posts and the file it deletes must be the one it
//! checked, so no outside image is posted and no outside file is removed.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::claude_support::{RunClient, git_workspace, png_bytes, with_workspace};
use crate::common::{Aimock, TestApp, use_anthropic};
use serde_json::json;
use valor::workspace::Requester;
use valor::workspace::mcp_config::RunScope;

const CALLS: usize = 200;

/// Swap `root/shots` for a symlink to `outside` and back until `stop`,
/// putting the inside image back whenever a call removed it.
fn swap_until(root: &Path, outside: &Path, inside_image: &[u8], stop: &AtomicBool) {
    let (shots, parked) = (root.join("shots"), root.join("shots-real"));
    while !stop.load(Ordering::Relaxed) {
        let _ = std::fs::rename(&shots, &parked);
        let _ = std::os::unix::fs::symlink(outside, &shots);
        std::thread::yield_now();
        let _ = std::fs::remove_file(&shots);
        let _ = std::fs::rename(&parked, &shots);
        if !shots.join("a.png").exists() {
            let _ = std::fs::write(shots.join("a.png"), inside_image);
        }
        // Leave the real directory in place a little longer, so some calls can succeed.
        for _ in 0..20 {
            std::thread::yield_now();
        }
    }
}

/// A run whose workspace holds `shots/`, with its MCP client.
async fn run_with_workspace(mock: &Aimock, root: &Path) -> (TestApp, String) {
    let app = TestApp::spawn(|s| {
        use_anthropic(s, mock);
        with_workspace(s, "shop", root);
        s.jobs.workers = 0;
    })
    .await;
    let conversation = app.send_ok("race", "hello there").await["conversation"].as_str().unwrap().to_owned();
    (app, conversation)
}

fn scope(root: &Path, conversation: String) -> RunScope {
    RunScope {
        job_id: 5,
        conversation_id: conversation,
        workspace: valor::workspace::Workspace::open("shop", root, &[]).unwrap(),
        requester: Requester::admin(),
        approval_timeout: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn a_hard_link_to_an_outside_file_is_neither_posted_nor_removed() {
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([{"match": {"userMessage": "hello there"}, "response": {"content": "Hi."}}])).await;
    let parent = tempfile::tempdir().unwrap();
    let root = git_workspace(parent.path());
    let outside = parent.path().join("secret.png");
    std::fs::write(&outside, png_bytes()).unwrap();
    std::fs::hard_link(&outside, root.join("linked.png")).unwrap();
    let (app, conversation) = run_with_workspace(&mock, &root).await;
    let grant = app.run_access().grant(scope(&root, conversation));
    let client = RunClient::connect(&app, grant.token()).await;
    let (is_error, text) = client.call("send_screenshot", json!({"path": "linked.png"})).await;
    assert!(is_error && text.contains("other hard links"), "{text}");
    assert!(outside.exists() && root.join("linked.png").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_swap_race_never_posts_or_deletes_an_outside_file() {
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([{"match": {"userMessage": "hello there"}, "response": {"content": "Hi."}}])).await;
    let parent = tempfile::tempdir().unwrap();
    let root = git_workspace(parent.path());
    let outside = tempfile::tempdir().unwrap();
    let inside_image = png_bytes();
    let mut outside_image = png_bytes();
    outside_image.extend_from_slice(b"OUTSIDE-SECRET");
    std::fs::write(outside.path().join("a.png"), &outside_image).unwrap();
    std::fs::create_dir_all(root.join("shots")).unwrap();
    std::fs::write(root.join("shots/a.png"), &inside_image).unwrap();
    let (app, conversation) = run_with_workspace(&mock, &root).await;
    let grant = app.run_access().grant(scope(&root, conversation));
    let client = RunClient::connect(&app, grant.token()).await;

    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (root, outside, image, stop) =
            (root.clone(), outside.path().to_owned(), inside_image.clone(), stop.clone());
        std::thread::spawn(move || swap_until(&root, &outside, &image, &stop))
    };
    let data_dir = app.data_dir.as_ref().unwrap().path().to_owned();
    let (mut posted, mut posted_outside, mut deleted_outside) = (0, 0, 0);
    for _ in 0..CALLS {
        let (is_error, text) = client.call("send_screenshot", json!({"path": "shots/a.png"})).await;
        if !is_error {
            posted += 1;
            let reference = text.split("stored as ").nth(1).unwrap().trim_end_matches(").").to_owned();
            if std::fs::read(data_dir.join(&reference)).unwrap() == outside_image {
                posted_outside += 1;
            }
        }
        if !outside.path().join("a.png").exists() {
            deleted_outside += 1;
            std::fs::write(outside.path().join("a.png"), &outside_image).unwrap();
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    assert!(posted > 0, "the race left no call a chance to succeed, so it proves nothing");
    assert_eq!(
        (posted_outside, deleted_outside),
        (0, 0),
        "outside images posted, outside files deleted in {CALLS} calls ({posted} posted)"
    );
}
