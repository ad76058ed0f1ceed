//! (transcriber: being written)
