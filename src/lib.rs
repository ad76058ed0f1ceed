//! The callcoach server: configuration, HTTP and WebSocket protocols, auth, storage and the
//! command line. The call pipeline itself lives in the `callcoach-actors` crate.
//!
//! * [`cli`] — the `callcoach` subcommands (`serve`, `models`, `transcribe`, `replay`, ...).
//! * [`config`] — layered configuration, validated once at start.
//! * [`server`] — `build_app`, shared by `main` and the tests.
//! * [`ws`] — the WebSocket protocols: native and Twilio ingest, agent overlay, live dashboard.
//! * [`hub`] — the registry of live calls and the fan-out of their events.
//! * [`api`], [`auth`], [`store`], [`crm`] — REST, security, persistence and CRM sync.

pub mod api;
pub mod auth;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
pub mod crm;
pub mod error;
pub mod hub;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod ws;

pub use callcoach_actors as actors;
