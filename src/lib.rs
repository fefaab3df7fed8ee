//! valor: a personal AI coworker in one process. See ARCHITECTURE.md for the
//! code map; modules depend only "downwards" (config ← storage, llm ← agent ←
//! channels, http ← app), which `tests/architecture.rs` enforces.

pub mod agent;
pub mod app;
pub mod channels;
pub mod cli;
pub mod config;
pub mod http;
pub mod jobs;
pub mod llm;
pub mod markdown;
pub mod mcp;
pub mod monitoring;
pub mod storage;
pub mod workspace;
