//! (server: being written)
