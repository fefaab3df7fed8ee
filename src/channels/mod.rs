//! Chat channels. Each turns its medium's input into agent turns and renders
//! the agent's events back. Telegram arrives in its own submodule.

pub mod telegram;
pub mod terminal;
