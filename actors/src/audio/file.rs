//! (file: being written)
