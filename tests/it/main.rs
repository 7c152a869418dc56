//! The integration tests, in one binary (as `just` keeps them): each module is one area,
//! and every test runs the real `portico` binary against real SQLite files, a real
//! PostgreSQL server, and real HTTP, SMTP and browser clients on 127.0.0.1. Shared helpers
//! live in `common`.

mod common;

mod adopt;
mod architecture;
mod ci_conditions;
mod ci_flow;
mod cli;
mod day2;
mod docs;
mod ecosystem;
mod email;
mod faults;
mod github;
mod guardrails;
mod incremental;
mod oidc;
mod passkeys;
mod passwords;
mod postgres;
mod roundtrip;
mod schema;
mod serve;
mod serve_account;
mod snapshots;
mod upgrade;
mod validation;
