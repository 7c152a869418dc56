//! portico: customer-center access as code.
//!
//! Rooms: [`manifest`] (the YAML format and loading), [`validate`] (DESIGN §2 and the
//! desired state), [`plan`] (the pure diff), [`render`] (text output), [`store`] (all SQL),
//! [`commands`] and [`cli`] (the edge).

#![forbid(unsafe_code)]

pub mod access;
pub mod catalog;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod error;
pub mod export;
pub mod files;
pub mod folders;
pub mod github;
pub mod gitindex;
pub mod history;
pub mod import;
pub mod manifest;
pub mod memory;
pub mod message;
pub mod notify;
pub mod parallel;
pub mod passwords;
pub mod plan;
pub mod policy;
pub mod progress;
pub mod render;
pub mod report;
pub mod schema;
pub mod serve;
pub mod signin;
pub mod state;
pub mod store;
pub mod unicode;
pub mod validate;
