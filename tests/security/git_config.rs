//! `project_context` (any chat member may ask for it) runs git in a
//! workspace whose `.git/config` the repository's authors control. Nothing
//! there may start a program: fsmonitor, filter drivers, signature programs.

use std::os::unix::fs::PermissionsExt;

use serde_json::json;

use crate::claude_support::{git_workspace, run_git, tool_output, with_workspace};
use crate::common::{Aimock, TestApp, use_anthropic};

#[tokio::test]
async fn project_context_never_runs_a_program_the_repository_configures() {
    let mock = Aimock::start().await;
    mock.add_fixtures(json!([
        {"match": {"userMessage": "what changed in shop", "hasToolResult": false},
         "response": {"toolCalls": [{"name": "project_context", "arguments": {"workspace": "shop"}}]}},
        {"match": {"userMessage": "what changed in shop", "hasToolResult": true},
         "response": {"content": "Here is the status."}}
    ]))
    .await;
    let outside = tempfile::tempdir().unwrap();
    let root = git_workspace(outside.path());
    // A hostile program: records that it ran, passes its input through (a working filter).
    let marker = outside.path().join("ran");
    let evil = outside.path().join("evil.sh");
    std::fs::write(&evil, format!("#!/bin/sh\necho \"$0 $*\" >> {}\ncat\n", marker.display())).unwrap();
    std::fs::set_permissions(&evil, std::fs::Permissions::from_mode(0o755)).unwrap();
    let evil = evil.display().to_string();
    for (key, value) in [
        ("core.fsmonitor", evil.as_str()),
        ("filter.evil.clean", evil.as_str()),
        ("filter.evil.smudge", evil.as_str()),
        ("filter.evil.process", evil.as_str()),
        ("filter.evil.required", "true"),
        ("log.showSignature", "true"),
        ("gpg.program", evil.as_str()),
        ("core.pager", evil.as_str()),
    ] {
        run_git(&root, &["config", key, value]);
    }
    std::fs::write(root.join(".gitattributes"), "* filter=evil\n").unwrap();
    // A modified tracked file, so status must look at its content (through the filter).
    std::fs::write(root.join("README.md"), "# Shop\nThe checkout service, changed.\n").unwrap();
    let app = TestApp::spawn(|s| {
        use_anthropic(s, &mock);
        with_workspace(s, "shop", &root);
    })
    .await;

    let reply = app.send_ok("code", "Tell me what changed in shop").await;
    let output = tool_output(&reply);
    assert!(output.contains("Add the checkout service"), "the log is still shown:\n{output}");
    assert!(output.contains("M README.md") && output.contains("?? notes.txt"), "and the status:\n{output}");
    assert!(!output.contains("git failed"), "{output}");
    let ran = std::fs::read_to_string(&marker).unwrap_or_default();
    assert!(ran.is_empty(), "the repository's programs ran:\n{ran}");
}
