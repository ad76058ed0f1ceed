//! (mulaw: being written)
