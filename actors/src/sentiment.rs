//! (sentiment: being written)
