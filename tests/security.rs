//! The security corpus: each attack an outside review reproduced, run
//! against the real server from outside (forged HTTP headers, the MCP doors,
//! the fake Bot API, stand-in CLIs, real file-system races). Every test here
//! failed on the code before its fix; future changes run against all of them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "security/auth.rs"]
mod auth;
#[path = "security/child_env.rs"]
mod child_env;
#[path = "common/claude.rs"]
mod claude_support;
mod common;
#[path = "security/git_config.rs"]
mod git_config;
#[path = "security/http_origin.rs"]
mod http_origin;
#[path = "security/screenshot_race.rs"]
mod screenshot_race;
