//! The generated two-speaker sales call (`assets/calls/sales-call.tsv`, rendered by
//! `scripts/make-call.sh`) and its ground truth: who says what, on which channel, when.
//!
//! The audio (~11 MB) is generated, not committed; [`generate`] renders it once into a directory
//! and later calls reuse it. Tests, `replay` examples and `loadgen` read the timeline to know
//! where every utterance ends, which is what end-of-utterance latency is measured from.

use super::ClientError;
use crate::actors::event::Track;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// File stem of the generated call inside the output directory.
pub const CALL_NAME: &str = "sales-call";

/// One line of the script as rendered.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Line {
    pub index: usize,
    /// Turn number: consecutive lines of one speaker share a turn.
    pub turn: usize,
    pub speaker: Track,
    pub channel: usize,
    pub start_ms: u64,
    pub end_ms: u64,
    /// What the line carries (`objection_price`, `competitor`, `monologue`, `buying_signal`, ...).
    pub tags: Vec<String>,
    pub text: String,
}

impl Line {
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

/// The ground-truth timeline of a rendered call (`sales-call.json`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Timeline {
    /// The WAV's file name, relative to the JSON's directory.
    pub wav: String,
    pub sample_rate: u32,
    pub channels: usize,
    /// Which speaker each channel carries.
    pub channel_tracks: Vec<Track>,
    pub duration_ms: u64,
    pub lines: Vec<Line>,
    /// Directory the JSON was read from (to find the WAV).
    #[serde(skip)]
    pub dir: PathBuf,
}

impl Timeline {
    /// Reads and checks a timeline JSON.
    pub fn load(path: &Path) -> Result<Timeline, ClientError> {
        let bad = |reason: String| ClientError::Timeline {
            path: path.to_owned(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|source| ClientError::Io {
            path: path.to_owned(),
            source,
        })?;
        let mut t: Timeline = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if t.channel_tracks.len() != t.channels {
            return Err(bad("channel_tracks does not match channels".into()));
        }
        for l in &t.lines {
            if l.channel >= t.channels || l.end_ms < l.start_ms || l.end_ms > t.duration_ms {
                return Err(bad(format!("line {} is out of range", l.index)));
            }
        }
        t.dir = path.parent().map(Path::to_owned).unwrap_or_default();
        Ok(t)
    }

    pub fn wav_path(&self) -> PathBuf {
        self.dir.join(&self.wav)
    }

    /// The line of `track` whose speech overlaps `[start_ms, end_ms]` the most, if any:
    /// how a server utterance is matched to the script.
    pub fn best_line(&self, track: Track, start_ms: u64, end_ms: u64) -> Option<&Line> {
        self.lines
            .iter()
            .filter(|l| track == Track::Mixed || l.speaker == track)
            .map(|l| (l, overlap(l.start_ms, l.end_ms, start_ms, end_ms)))
            .filter(|(_, o)| *o > 0)
            .max_by_key(|(_, o)| *o)
            .map(|(l, _)| l)
    }

    /// The end of the last script line of `track` that overlaps `[start_ms, end_ms]`: when the
    /// speech a server utterance covers really ended (a server utterance may span several
    /// lines, or a line may be cut into several utterances).
    pub fn speech_end_within(&self, track: Track, start_ms: u64, end_ms: u64) -> Option<u64> {
        self.lines
            .iter()
            .filter(|l| track == Track::Mixed || l.speaker == track)
            .filter(|l| overlap(l.start_ms, l.end_ms, start_ms, end_ms) > 0)
            .map(|l| l.end_ms.min(end_ms.max(l.start_ms)))
            .max()
    }

    /// Lines carrying `tag`.
    pub fn tagged<'a>(&'a self, tag: &'a str) -> impl Iterator<Item = &'a Line> + 'a {
        self.lines.iter().filter(move |l| l.has_tag(tag))
    }
}

fn overlap(a0: u64, a1: u64, b0: u64, b1: u64) -> u64 {
    a1.min(b1).saturating_sub(a0.max(b0))
}

/// The renderer shipped with the repository.
pub fn generator_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/make-call.sh")
}

/// Where the call is rendered unless told otherwise: `target/calls` of this checkout, which
/// `cargo clean` removes with everything else generated.
pub fn default_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/calls")
}

/// Renders the call into `dir` (once; a cached render with the same script is reused) and
/// returns its timeline. Needs espeak-ng, sox and festival (see the script's header).
pub fn generate(dir: &Path) -> Result<Timeline, ClientError> {
    let script = generator_script();
    let out = std::process::Command::new("bash")
        .arg(&script)
        .arg(dir)
        .output()
        .map_err(|e| ClientError::Generate(format!("cannot run {}: {e}", script.display())))?;
    if !out.status.success() {
        return Err(ClientError::Generate(format!(
            "{} failed ({}): {}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Timeline::load(&dir.join(format!("{CALL_NAME}.json")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeline() -> Timeline {
        let json = r#"{"source_sha256":"x","wav":"c.wav","sample_rate":16000,"channels":2,
            "channel_tracks":["agent","customer"],"duration_ms":10000,"voices":{},
            "lines":[
              {"index":0,"turn":0,"speaker":"agent","channel":0,"start_ms":500,"end_ms":2000,"start_s":0.5,"end_s":2.0,"tags":["greeting"],"text":"hi"},
              {"index":1,"turn":1,"speaker":"customer","channel":1,"start_ms":2600,"end_ms":4000,"start_s":2.6,"end_s":4.0,"tags":["objection_price"],"text":"too expensive"},
              {"index":2,"turn":2,"speaker":"agent","channel":0,"start_ms":4700,"end_ms":6000,"start_s":4.7,"end_s":6.0,"tags":[],"text":"ok"},
              {"index":3,"turn":2,"speaker":"agent","channel":0,"start_ms":6450,"end_ms":8000,"start_s":6.45,"end_s":8.0,"tags":[],"text":"more"}]}"#;
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn matches_server_utterances_to_script_lines() {
        let t = timeline();
        assert_eq!(t.best_line(Track::Customer, 2500, 4100).unwrap().index, 1);
        // Wrong track: the customer's utterance does not match an agent line.
        assert!(t.best_line(Track::Agent, 2600, 4000).is_none());
        // One server utterance spanning two agent lines ends where the second line ends.
        assert_eq!(t.speech_end_within(Track::Agent, 4650, 8050), Some(8000));
        // A line cut in two by a forced split: the first piece ends at its own end.
        assert_eq!(t.speech_end_within(Track::Agent, 4700, 5300), Some(5300));
        assert_eq!(t.tagged("objection_price").count(), 1);
    }

    #[test]
    fn rejects_inconsistent_timelines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.json");
        std::fs::write(&path, r#"{"wav":"a.wav","sample_rate":16000,"channels":2,"channel_tracks":["agent"],"duration_ms":1,"lines":[]}"#).unwrap();
        assert!(matches!(
            Timeline::load(&path),
            Err(ClientError::Timeline { .. })
        ));
        std::fs::write(&path, "not json").unwrap();
        assert!(Timeline::load(&path).is_err());
    }

    /// Renders the real call (needs the TTS packages the setup script installs) and checks the
    /// script's promises: two speakers on their channels, a monologue over a minute, the
    /// price objection, natural pauses between turns.
    #[test]
    fn generated_call_has_what_the_tests_rely_on() {
        let t = generate(&default_dir()).unwrap();
        assert_eq!(t.channel_tracks, vec![Track::Agent, Track::Customer]);
        let audio = super::super::audio::load(&t.wav_path()).unwrap();
        assert_eq!((audio.rate, audio.channels.len()), (16_000, 2));
        assert!(audio.duration_ms().abs_diff(t.duration_ms) <= 1);
        let mono: Vec<&Line> = t.tagged("monologue").collect();
        let speech: u64 = mono.iter().map(|l| l.end_ms - l.start_ms).sum();
        assert!(speech > 30_000, "monologue speech {speech} ms");
        // Past assets/playbook.toml's monologue_long (max_s = 60) with room for endpointing.
        let span = mono.last().unwrap().end_ms - mono[0].start_ms;
        assert!(span > 65_000, "monologue span {span} ms");
        assert!(
            mono.windows(2).all(|w| w[1].index == w[0].index + 1),
            "one unbroken turn"
        );
        assert!(mono.iter().all(|l| l.speaker == Track::Agent));
        assert!(t
            .tagged("objection_price")
            .any(|l| l.text.contains("that's too expensive")));
        // Each line is speech on its own channel and silence on the other.
        let rms = |c: &[f32], a: u64, b: u64| {
            let s = &c[(a * 16) as usize..(b * 16) as usize];
            (s.iter().map(|x| x * x).sum::<f32>() / s.len() as f32).sqrt()
        };
        for l in &t.lines {
            assert!(
                rms(&audio.channels[l.channel], l.start_ms, l.end_ms) > 0.02,
                "line {}",
                l.index
            );
            assert!(
                rms(&audio.channels[1 - l.channel], l.start_ms, l.end_ms) < 1e-3,
                "line {}",
                l.index
            );
        }
        // Pauses between turns are natural: 0.5-1.0 s.
        for w in t.lines.windows(2) {
            let gap = w[1].start_ms - w[0].end_ms;
            if w[0].speaker != w[1].speaker {
                assert!(
                    (500..=1_000).contains(&gap),
                    "gap {gap} ms before line {}",
                    w[1].index
                );
            }
        }
    }
}
