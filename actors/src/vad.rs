//! (vad: being written)
