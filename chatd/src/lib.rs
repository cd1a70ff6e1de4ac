//! `chatd`: a multi-room chat server on the `socketio` crate.
//!
//! Rooms are actors ([`room`]) found through a registry actor ([`registry`]); names are held
//! by the identity actor ([`identity`]); messages are stored durably ([`store`]) before they
//! are acknowledged and broadcast. The chat protocol lives on `/chat` ([`chat`]); the classic
//! Socket.IO demos work on `/` ([`demo`]). See `docs/protocol.md`.

#![warn(missing_docs)]

pub mod access;
pub mod accounts;
pub mod admin;
pub mod admin_listener;
pub mod admin_ui;
pub mod api;
pub mod app;
pub mod chat;
pub mod cluster;
pub mod config;
pub mod deliver;
pub mod demo;
pub mod drain;
pub mod http;
pub mod identity;
pub mod limits;
pub mod metrics;
pub mod origin;
pub mod paging;
pub mod protocol;
pub mod registry;
pub mod room;
#[cfg(test)]
mod room_cluster_tests;
#[cfg(test)]
mod room_tests;
pub mod store;
