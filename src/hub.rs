//! (hub: being written)
