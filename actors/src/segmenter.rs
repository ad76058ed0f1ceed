//! (segmenter: being written)
