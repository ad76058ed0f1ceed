//! The configuration file and environment: TOML → `config::ConfigFile` → `Config::from_file`,
//! and `KEY=value` lines → `ConfigFile::apply_env`.
//!
//! Input: the text up to the first NUL byte is the TOML file; the lines after it are
//! environment variables. `auth.jwt_public_key_file` is pointed at a path that does not exist
//! before validation so the harness never reads whatever file (or device) the fuzzer names.
#![no_main]

use callcoach::config::{Config, ConfigFile};
use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (file_text, env_text) = text.split_once('\0').unwrap_or((text, ""));
    let Ok(mut file) = toml::from_str::<ConfigFile>(file_text) else {
        return;
    };
    let vars: BTreeMap<String, String> = env_text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (format!("CALLCOACH_{k}"), v.to_owned()))
        .collect();
    if file.apply_env(&vars).is_err() {
        return;
    }
    if file.auth.jwt_public_key_file.is_some() {
        file.auth.jwt_public_key_file = Some("/nonexistent/callcoach-fuzz/key.pem".into());
    }
    if let Ok(config) = Config::from_file(file) {
        assert!(config.limits.max_frame_bytes >= 160);
        assert!(config.limits.max_messages_per_sec >= 50);
    }
});
