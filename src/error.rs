//! (error: being written)
