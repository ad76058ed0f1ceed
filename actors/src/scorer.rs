//! (scorer: being written)
