//! Helpers shared by the integration tests: a real server on 127.0.0.1:0 with a fresh SQLite
//! file, tokens, the generated sales call, and small assertions on transcripts.
#![allow(dead_code)]

pub mod db;
pub mod heap;
pub mod server;
pub mod text;
