//! GPT-2 byte-level token text ↔ raw bytes.
//!
//! CTranslate2's `vocabulary.txt` (and Hugging Face's `tokenizer.json`) spell every token in
//! GPT-2's printable alphabet: each byte maps to one Unicode character (printable Latin-1 bytes
//! to themselves, the other 68 bytes to U+0100 onwards). whisper.cpp wants the raw bytes, as
//! OpenAI's `convert-pt-to-ggml.py` writes them.

use crate::ModelError;
use std::collections::HashMap;

/// GPT-2's `bytes_to_unicode`: the character standing for each byte value.
pub fn byte_to_char() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut extra = 0u32;
    for b in 0..=255u8 {
        let printable = (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
        table[b as usize] = if printable {
            char::from(b)
        } else {
            // unwrap: 256 + extra stays below 0x200, always a valid scalar value
            let c = char::from_u32(256 + extra).unwrap_or('\u{FFFD}');
            extra += 1;
            c
        };
    }
    table
}

/// Decodes tokens spelled in the GPT-2 alphabet back to bytes.
pub struct ByteDecoder {
    map: HashMap<char, u8>,
}

impl Default for ByteDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ByteDecoder {
    pub fn new() -> Self {
        let map = byte_to_char()
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect();
        Self { map }
    }

    /// The raw bytes of one token, or an error naming the first character outside the alphabet.
    pub fn decode(&self, token: &str) -> Result<Vec<u8>, ModelError> {
        token
            .chars()
            .map(|c| {
                self.map.get(&c).copied().ok_or_else(|| {
                    ModelError::Vocabulary(format!(
                        "{c:?} in token {token:?} is not in the gpt-2 byte alphabet"
                    ))
                })
            })
            .collect()
    }
}

/// Spells raw bytes in the GPT-2 alphabet (the inverse of [`ByteDecoder::decode`]).
pub fn encode(bytes: &[u8]) -> String {
    let table = byte_to_char();
    bytes.iter().map(|&b| table[b as usize]).collect()
}

/// Reads `vocabulary.txt` (one token per line, in id order) and returns the raw bytes of the
/// first `n` tokens: the text tokens. whisper.cpp adds the special tokens itself.
pub fn read_text_tokens(vocabulary_txt: &str, n: usize) -> Result<Vec<Vec<u8>>, ModelError> {
    let decoder = ByteDecoder::new();
    let tokens: Vec<&str> = vocabulary_txt.lines().take(n).collect();
    if tokens.len() < n {
        return Err(ModelError::Vocabulary(format!(
            "vocabulary has {} tokens, expected at least {n}",
            tokens.len()
        )));
    }
    tokens.iter().map(|t| decoder.decode(t)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphabet_is_a_bijection_with_gpt2_spellings() {
        let t = byte_to_char();
        let set: std::collections::HashSet<char> = t.iter().copied().collect();
        assert_eq!(set.len(), 256);
        assert_eq!(t[b' ' as usize], 'Ġ'); // GPT-2's well-known space marker
        assert_eq!(t[b'\n' as usize], 'Ċ');
        assert_eq!(t[b'A' as usize], 'A');
        assert_eq!(t[0], 'Ā');
    }

    #[test]
    fn decodes_known_tokens() {
        let d = ByteDecoder::new();
        assert_eq!(d.decode("Ġthe").unwrap(), b" the");
        assert_eq!(d.decode("ĠâĢĶ").unwrap(), " \u{2014}".as_bytes()); // " —"
        assert!(d.decode("€").is_err());
    }

    #[test]
    fn text_tokens_take_the_first_n_lines() {
        let v = "!\n\"\nĠthe\n<|endoftext|>\n";
        let toks = read_text_tokens(v, 3).unwrap();
        assert_eq!(toks, vec![b"!".to_vec(), b"\"".to_vec(), b" the".to_vec()]);
        assert!(read_text_tokens(v, 9).is_err());
    }

    proptest::proptest! {
        #[test]
        fn round_trips_any_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let d = ByteDecoder::new();
            proptest::prop_assert_eq!(d.decode(&encode(&bytes)).unwrap(), bytes);
        }
    }
}
