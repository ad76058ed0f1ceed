//! (call: being written)
