//! Configuration: one TOML file < `CALLCOACH_*` environment < command-line flags, validated once
//! at start into typed values. A bad value fails the start with the key and the reason.
//!
//! [`ConfigFile`] is what a file (or the environment) may say; [`Config`] is what the server
//! runs on. Every default below says where its number comes from.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("failed to read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid value for {key}: {reason}")]
    Invalid { key: String, reason: String },
}

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

/// The raw, optional-everything shape of a config file. Unknown keys are an error so a typo never
/// silently falls back to a default.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub addr: Option<String>,
    pub database_url: Option<String>,
    pub log_format: Option<String>,
    pub assets_dir: Option<PathBuf>,
    pub playbook: Option<PathBuf>,
    pub retention_days: Option<u32>,
    pub uploads_dir: Option<PathBuf>,
    #[serde(default)]
    pub auth: AuthFile,
    #[serde(default)]
    pub whisper: WhisperFile,
    #[serde(default)]
    pub limits: LimitsFile,
    #[serde(default)]
    pub segmenter: SegmenterFile,
    #[serde(default)]
    pub crm: CrmFile,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthFile {
    pub jwt_secret: Option<String>,
    pub jwt_public_key_file: Option<PathBuf>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WhisperFile {
    pub enabled: Option<bool>,
    pub model: Option<PathBuf>,
    pub workers: Option<usize>,
    pub threads: Option<usize>,
    pub queue_capacity: Option<usize>,
    pub flash_attn: Option<bool>,
    pub allow_fault_injection: Option<bool>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub max_calls: Option<usize>,
    pub max_frame_bytes: Option<usize>,
    pub max_text_bytes: Option<usize>,
    pub max_messages_per_sec: Option<u32>,
    pub max_call_secs: Option<u64>,
    pub api_per_ip_per_sec: Option<u32>,
    pub api_per_token_per_sec: Option<u32>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmenterFile {
    pub endpoint_silence_ms: Option<u64>,
    pub speculate_after_ms: Option<u64>,
    pub max_utterance_ms: Option<u64>,
    pub partial_interval_ms: Option<u64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CrmFile {
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
}

impl ConfigFile {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_owned(),
            source: Box::new(source),
        })
    }

    /// Overlays `CALLCOACH_*` variables. Each variable is named in the table below so the README
    /// and this function cannot drift apart; an unparsable value is an error, not a default.
    pub fn apply_env(&mut self, vars: &BTreeMap<String, String>) -> Result<(), ConfigError> {
        fn parse<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            v.parse::<T>().map_err(|e| invalid(key, e.to_string()))
        }
        for (key, v) in vars {
            let v = v.as_str();
            match key.as_str() {
                "CALLCOACH_ADDR" => self.addr = Some(v.into()),
                "CALLCOACH_DATABASE_URL" => self.database_url = Some(v.into()),
                "CALLCOACH_LOG_FORMAT" => self.log_format = Some(v.into()),
                "CALLCOACH_ASSETS_DIR" => self.assets_dir = Some(v.into()),
                "CALLCOACH_PLAYBOOK" => self.playbook = Some(v.into()),
                "CALLCOACH_RETENTION_DAYS" => self.retention_days = Some(parse(key, v)?),
                "CALLCOACH_UPLOADS_DIR" => self.uploads_dir = Some(v.into()),
                "CALLCOACH_JWT_SECRET" => self.auth.jwt_secret = Some(v.into()),
                "CALLCOACH_JWT_PUBLIC_KEY_FILE" => self.auth.jwt_public_key_file = Some(v.into()),
                "CALLCOACH_WHISPER_ENABLED" => self.whisper.enabled = Some(parse(key, v)?),
                "CALLCOACH_WHISPER_MODEL" => self.whisper.model = Some(v.into()),
                "CALLCOACH_WHISPER_WORKERS" => self.whisper.workers = Some(parse(key, v)?),
                "CALLCOACH_WHISPER_THREADS" => self.whisper.threads = Some(parse(key, v)?),
                "CALLCOACH_WHISPER_QUEUE" => self.whisper.queue_capacity = Some(parse(key, v)?),
                "CALLCOACH_WHISPER_FLASH_ATTN" => self.whisper.flash_attn = Some(parse(key, v)?),
                "CALLCOACH_FAULT_INJECTION" => {
                    self.whisper.allow_fault_injection = Some(parse(key, v)?)
                }
                "CALLCOACH_ENDPOINT_SILENCE_MS" => {
                    self.segmenter.endpoint_silence_ms = Some(parse(key, v)?)
                }
                "CALLCOACH_SPECULATE_AFTER_MS" => {
                    self.segmenter.speculate_after_ms = Some(parse(key, v)?)
                }
                "CALLCOACH_MAX_CALLS" => self.limits.max_calls = Some(parse(key, v)?),
                "CALLCOACH_MAX_FRAME_BYTES" => self.limits.max_frame_bytes = Some(parse(key, v)?),
                "CALLCOACH_MAX_MESSAGES_PER_SEC" => {
                    self.limits.max_messages_per_sec = Some(parse(key, v)?)
                }
                "CALLCOACH_MAX_CALL_SECS" => self.limits.max_call_secs = Some(parse(key, v)?),
                "CALLCOACH_API_PER_IP_PER_SEC" => {
                    self.limits.api_per_ip_per_sec = Some(parse(key, v)?)
                }
                "CALLCOACH_API_PER_TOKEN_PER_SEC" => {
                    self.limits.api_per_token_per_sec = Some(parse(key, v)?)
                }
                "CALLCOACH_CRM_WEBHOOK_URL" => self.crm.webhook_url = Some(v.into()),
                "CALLCOACH_CRM_WEBHOOK_SECRET" => self.crm.webhook_secret = Some(v.into()),
                // Variables read elsewhere (e.g. by tests) are not config keys.
                _ => {}
            }
        }
        Ok(())
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line: what production log pipelines ingest.
    Json,
    /// Human-readable, for a terminal.
    Pretty,
}

/// How tokens are verified.
#[derive(Debug, Clone)]
pub enum JwtKey {
    Hs256Secret(String),
    Rs256PublicKeyPem(Vec<u8>),
}

#[derive(Debug, Clone)]
pub struct WhisperConfig {
    pub enabled: bool,
    /// `None`: the default imported model (`callcoach models fetch`).
    pub model: Option<PathBuf>,
    pub workers: NonZeroUsize,
    pub threads: NonZeroUsize,
    pub queue_capacity: NonZeroUsize,
    /// whisper.cpp's flash attention kernels (see `TranscriberConfig::flash_attn`).
    pub flash_attn: bool,
    pub allow_fault_injection: bool,
}

/// Admission limits; each has an error code when hit (see `Code`).
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_calls: NonZeroUsize,
    pub max_frame_bytes: usize,
    pub max_text_bytes: usize,
    pub max_messages_per_sec: u32,
    pub max_call: Duration,
    /// REST rate limits (bursts are twice the rate). Behind a load balancer every request has
    /// the balancer's address: raise the per-IP limit there.
    pub api: crate::api::limits::ApiLimits,
}

#[derive(Debug, Clone)]
pub struct SegmenterConfig {
    pub endpoint_silence: Duration,
    /// Silence after which a pausing utterance is decoded on an idle worker ahead of the
    /// endpoint; zero turns it off.
    pub speculate_after: Duration,
    pub max_utterance: Duration,
    pub partial_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct CrmConfig {
    pub webhook_url: Option<String>,
    pub webhook_secret: Option<String>,
}

/// The validated configuration the server runs on.
#[derive(Debug, Clone)]
pub struct Config {
    pub addr: SocketAddr,
    pub database_url: String,
    pub log_format: LogFormat,
    pub assets_dir: PathBuf,
    pub playbook: Option<PathBuf>,
    pub retention: Duration,
    /// Where uploaded recordings wait for post-call analysis.
    pub uploads_dir: PathBuf,
    pub jwt: JwtKey,
    pub whisper: WhisperConfig,
    pub limits: Limits,
    pub segmenter: SegmenterConfig,
    pub crm: CrmConfig,
}

/// The development secret used when none is configured. `serve` logs a loud warning when it is
/// in use; it exists so README's one command starts a working server on a fresh machine.
pub const DEV_JWT_SECRET: &str = "callcoach-dev-secret-change-me";

/// Default bind address: loopback, so a fresh start exposes nothing to the network.
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";

/// Default database: a SQLite file in the working directory, created on first start.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://callcoach.sqlite";

/// 100 concurrent calls is the operators' floor; admission beyond what the box can transcribe in
/// real time is refused with `too_many_calls` rather than degrading every call.
const DEFAULT_MAX_CALLS: usize = 100;
/// A 20 ms frame of 48 kHz stereo f32 is 7 680 bytes; 64 KiB admits frames up to ~170 ms at that
/// rate, generous for any softphone, while bounding what one message can make us allocate.
const DEFAULT_MAX_FRAME_BYTES: usize = 64 * 1024;
/// Control and Twilio JSON messages: a Twilio `media` message for 20 ms is ~300 bytes; 64 KiB
/// leaves room for large `customParameters` without letting one message hog memory.
const DEFAULT_MAX_TEXT_BYTES: usize = 64 * 1024;
/// Two tracks at 20 ms frames is 100 messages/s; 10 ms frames and Twilio marks stay under 250.
/// 500/s gives 2x headroom and stops a flood (10 000 tiny frames/s) at the door.
const DEFAULT_MAX_MESSAGES_PER_SEC: u32 = 500;
/// Four hours: far beyond any sales call; stops a forgotten stream from living forever.
const DEFAULT_MAX_CALL_SECS: u64 = 4 * 3600;
/// Design: endpoint after ~300-500 ms of silence; 360 ms is still past the mid-sentence pauses
/// of the generated call (≤ 300 ms) and keeps a final whose decode does not read as a finished
/// sentence within the 400 ms bar (benches/README.md, "Session 4").
const DEFAULT_ENDPOINT_SILENCE_MS: u64 = 360;
/// 100 ms: past the gaps between words, so most offers end a phrase; early enough that the
/// decode is done when the endpoint comes (benches/README.md, "utterance end → final").
const DEFAULT_SPECULATE_AFTER_MS: u64 = 100;
/// Design: force-cut long speech at ~15 s so finals (and the hints built on them) keep flowing.
const DEFAULT_MAX_UTTERANCE_MS: u64 = 15_000;
/// Design: partial hypotheses about every second.
const DEFAULT_PARTIAL_INTERVAL_MS: u64 = 1_000;
/// 1 worker × 2 threads: on 2 cores it held the most real-time calls and gave the lowest
/// final latency (benches/README.md, "capacity"); set 2 × 1 where other work shares the cores
/// (whisper.cpp threads spin-wait).
const DEFAULT_WHISPER_WORKERS: usize = 1;
const DEFAULT_WHISPER_THREADS: usize = 2;
/// GDPR-minded default: transcripts older than 90 days are purged.
const DEFAULT_RETENTION_DAYS: u32 = 90;

fn nonzero(key: &str, v: usize) -> Result<NonZeroUsize, ConfigError> {
    NonZeroUsize::new(v).ok_or_else(|| invalid(key, "must be at least 1"))
}

impl Config {
    /// Validates a layered [`ConfigFile`] into the typed configuration.
    pub fn from_file(file: ConfigFile) -> Result<Self, ConfigError> {
        let addr_text = file.addr.as_deref().unwrap_or(DEFAULT_ADDR);
        let addr: SocketAddr = addr_text
            .parse()
            .map_err(|e| invalid("addr", format!("`{addr_text}`: {e}")))?;

        let database_url = file
            .database_url
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(invalid(
                "database_url",
                format!("`{database_url}` is neither sqlite: nor postgres://"),
            ));
        }

        let log_format = match file.log_format.as_deref().unwrap_or("json") {
            "json" => LogFormat::Json,
            "pretty" => LogFormat::Pretty,
            other => return Err(invalid("log_format", format!("`{other}` (json or pretty)"))),
        };

        let jwt = match (file.auth.jwt_secret, file.auth.jwt_public_key_file) {
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "auth",
                    "set either jwt_secret or jwt_public_key_file, not both",
                ))
            }
            (Some(secret), None) => {
                // HS256 with a short secret is brute-forceable; RFC 7518 §3.2 asks for a key at
                // least as long as the hash output (32 bytes).
                if secret.len() < 16 {
                    return Err(invalid("auth.jwt_secret", "must be at least 16 bytes"));
                }
                JwtKey::Hs256Secret(secret)
            }
            (None, Some(path)) => {
                let pem = std::fs::read(&path).map_err(|e| {
                    invalid(
                        "auth.jwt_public_key_file",
                        format!("{}: {e}", path.display()),
                    )
                })?;
                JwtKey::Rs256PublicKeyPem(pem)
            }
            (None, None) => JwtKey::Hs256Secret(DEV_JWT_SECRET.to_owned()),
        };

        // Two single-thread workers: whisper.cpp threads spin-wait on each other, so a 2-thread
        // worker stalls ~10x whenever anything else holds a core, while 1-thread workers only
        // share it; and agent and customer utterances decode side by side (benches/README.md,
        // "Pool throughput by workers x threads"). Dedicated cores may prefer 1 x 2.
        let whisper = WhisperConfig {
            enabled: file.whisper.enabled.unwrap_or(true),
            model: file.whisper.model,
            workers: nonzero(
                "whisper.workers",
                file.whisper.workers.unwrap_or(DEFAULT_WHISPER_WORKERS),
            )?,
            threads: nonzero(
                "whisper.threads",
                file.whisper.threads.unwrap_or(DEFAULT_WHISPER_THREADS),
            )?,
            // 64 queued utterances is ~1-2 minutes of speech at 1-2 s per utterance: past that,
            // real time is already lost and refusing (Busy) is more honest than queueing.
            queue_capacity: nonzero(
                "whisper.queue_capacity",
                file.whisper.queue_capacity.unwrap_or(64),
            )?,
            flash_attn: file
                .whisper
                .flash_attn
                .unwrap_or(callcoach_actors::transcriber::DEFAULT_FLASH_ATTN),
            allow_fault_injection: file.whisper.allow_fault_injection.unwrap_or(false),
        };

        let limits = Limits {
            max_calls: nonzero(
                "limits.max_calls",
                file.limits.max_calls.unwrap_or(DEFAULT_MAX_CALLS),
            )?,
            max_frame_bytes: file
                .limits
                .max_frame_bytes
                .unwrap_or(DEFAULT_MAX_FRAME_BYTES),
            max_text_bytes: file.limits.max_text_bytes.unwrap_or(DEFAULT_MAX_TEXT_BYTES),
            max_messages_per_sec: file
                .limits
                .max_messages_per_sec
                .unwrap_or(DEFAULT_MAX_MESSAGES_PER_SEC),
            max_call: Duration::from_secs(
                file.limits.max_call_secs.unwrap_or(DEFAULT_MAX_CALL_SECS),
            ),
            api: {
                let default = crate::api::limits::ApiLimits::default();
                let per_ip = file
                    .limits
                    .api_per_ip_per_sec
                    .unwrap_or(default.per_ip_per_sec);
                let per_token = file
                    .limits
                    .api_per_token_per_sec
                    .unwrap_or(default.per_token_per_sec);
                if per_ip == 0 || per_token == 0 {
                    return Err(invalid("limits.api_per_*_per_sec", "must be at least 1"));
                }
                crate::api::limits::ApiLimits {
                    per_ip_per_sec: per_ip,
                    per_ip_burst: per_ip.saturating_mul(2),
                    per_token_per_sec: per_token,
                    per_token_burst: per_token.saturating_mul(2),
                }
            },
        };
        if limits.max_frame_bytes < 160 {
            return Err(invalid(
                "limits.max_frame_bytes",
                "must admit at least one 20 ms μ-law frame (160 bytes)",
            ));
        }
        if limits.max_messages_per_sec < 50 {
            return Err(invalid(
                "limits.max_messages_per_sec",
                "must admit at least 50 messages/s (one track at 20 ms frames)",
            ));
        }

        let segmenter = SegmenterConfig {
            endpoint_silence: Duration::from_millis(
                file.segmenter
                    .endpoint_silence_ms
                    .unwrap_or(DEFAULT_ENDPOINT_SILENCE_MS),
            ),
            speculate_after: Duration::from_millis(
                file.segmenter
                    .speculate_after_ms
                    .unwrap_or(DEFAULT_SPECULATE_AFTER_MS),
            ),
            max_utterance: Duration::from_millis(
                file.segmenter
                    .max_utterance_ms
                    .unwrap_or(DEFAULT_MAX_UTTERANCE_MS),
            ),
            partial_interval: Duration::from_millis(
                file.segmenter
                    .partial_interval_ms
                    .unwrap_or(DEFAULT_PARTIAL_INTERVAL_MS),
            ),
        };
        if !(100..=2_000).contains(&segmenter.endpoint_silence.as_millis()) {
            return Err(invalid(
                "segmenter.endpoint_silence_ms",
                "must be within 100..=2000",
            ));
        }
        if !segmenter.speculate_after.is_zero()
            && segmenter.speculate_after >= segmenter.endpoint_silence
        {
            return Err(invalid(
                "segmenter.speculate_after_ms",
                "must be 0 (off) or below segmenter.endpoint_silence_ms",
            ));
        }
        if segmenter.max_utterance < Duration::from_secs(2)
            || segmenter.max_utterance > Duration::from_secs(30)
        {
            // Whisper's window is 30 s; longer utterances would be truncated by the model.
            return Err(invalid(
                "segmenter.max_utterance_ms",
                "must be within 2000..=30000",
            ));
        }

        Ok(Config {
            addr,
            database_url,
            log_format,
            assets_dir: file.assets_dir.unwrap_or_else(default_assets_dir),
            playbook: file.playbook,
            retention: Duration::from_secs(
                u64::from(file.retention_days.unwrap_or(DEFAULT_RETENTION_DAYS)) * 86_400,
            ),
            uploads_dir: file
                .uploads_dir
                .unwrap_or_else(|| PathBuf::from("callcoach-uploads")),
            jwt,
            whisper,
            limits,
            segmenter,
            crm: CrmConfig {
                webhook_url: file.crm.webhook_url,
                webhook_secret: file.crm.webhook_secret,
            },
        })
    }

    /// File (if any) < environment. Flags are applied by the caller on the [`ConfigFile`] before
    /// validation, so the precedence is file < env < flags.
    pub fn layered_file(path: Option<&Path>) -> Result<ConfigFile, ConfigError> {
        let mut file = match path {
            Some(p) => ConfigFile::load(p)?,
            None => ConfigFile::default(),
        };
        let vars: BTreeMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("CALLCOACH_"))
            .collect();
        file.apply_env(&vars)?;
        Ok(file)
    }

    /// Whether the built-in development secret is in use (logged as a warning at start).
    pub fn uses_dev_secret(&self) -> bool {
        matches!(&self.jwt, JwtKey::Hs256Secret(s) if s == DEV_JWT_SECRET)
    }

    /// A configuration for tests and tools: defaults, SQLite at `database_url`.
    pub fn for_tests(database_url: &str) -> Self {
        let mut file = ConfigFile {
            addr: Some("127.0.0.1:0".into()),
            database_url: Some(database_url.into()),
            ..ConfigFile::default()
        };
        // Test binaries run several servers at once on the same cores, where 2-thread workers
        // would spin-wait against each other: one thread per worker there.
        file.whisper.workers = Some(2);
        file.whisper.threads = Some(1);
        // unwrap: the defaults above are valid by construction (checked by a unit test).
        Config::from_file(file).expect("default config is valid")
    }
}

/// `assets/` beside the binary's source tree when run from the repo, else the working directory.
fn default_assets_dir() -> PathBuf {
    let repo_assets = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets");
    if repo_assets.is_dir() {
        repo_assets
    } else {
        PathBuf::from("assets")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_validate() {
        let cfg = Config::from_file(ConfigFile::default()).unwrap();
        assert_eq!(cfg.addr.to_string(), DEFAULT_ADDR);
        assert!(cfg.uses_dev_secret());
        assert_eq!(cfg.limits.max_calls.get(), DEFAULT_MAX_CALLS);
        Config::for_tests("sqlite::memory:");
    }

    #[test]
    fn env_overrides_file_and_flags_override_env() {
        let mut file: ConfigFile =
            toml::from_str("addr = \"127.0.0.1:9000\"\n[whisper]\nworkers = 3\n").unwrap();
        file.apply_env(&env(&[
            ("CALLCOACH_WHISPER_WORKERS", "2"),
            ("CALLCOACH_MAX_CALLS", "7"),
        ]))
        .unwrap();
        // A flag is applied last by `serve`.
        file.limits.max_calls = Some(9);
        let cfg = Config::from_file(file).unwrap();
        assert_eq!(cfg.addr.port(), 9000);
        assert_eq!(cfg.whisper.workers.get(), 2);
        assert_eq!(cfg.limits.max_calls.get(), 9);
    }

    #[test]
    fn unknown_keys_and_bad_values_fail_with_the_key() {
        assert!(toml::from_str::<ConfigFile>("adr = \"x\"").is_err());
        let err = ConfigFile::default()
            .apply_env(&env(&[("CALLCOACH_WHISPER_WORKERS", "many")]))
            .unwrap_err();
        assert!(err.to_string().contains("CALLCOACH_WHISPER_WORKERS"));
        let file = ConfigFile {
            database_url: Some("mysql://x".into()),
            ..Default::default()
        };
        let err = Config::from_file(file).unwrap_err().to_string();
        assert!(err.contains("database_url"), "{err}");
        let mut file = ConfigFile::default();
        file.whisper.workers = Some(0);
        assert!(Config::from_file(file)
            .unwrap_err()
            .to_string()
            .contains("whisper.workers"));
        let mut file = ConfigFile::default();
        file.auth.jwt_secret = Some("short".into());
        assert!(Config::from_file(file)
            .unwrap_err()
            .to_string()
            .contains("jwt_secret"));
    }
}
