//! (pcm: being written)
