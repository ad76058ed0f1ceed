//! (api: being written)
