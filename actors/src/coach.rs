//! (coach: being written)
