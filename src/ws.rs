//! (ws: being written)
