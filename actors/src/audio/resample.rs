//! (resample: being written)
