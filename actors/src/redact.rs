//! (redact: being written)
