//! Offline Whisper model import (CTranslate2 -> ggml).
