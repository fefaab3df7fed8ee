//! The Telegram channel (Bot API, long polling).
pub mod access;
pub mod api;
pub mod inbound;
pub mod limiter;
pub mod pacing;
pub mod render;
pub mod split;
