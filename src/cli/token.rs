//! `callcoach token`: mints an HS256 development token from the configured secret.
//!
//! The secret comes from `--secret`, else `CALLCOACH_JWT_SECRET`, else the built-in development
//! secret that `serve` also falls back to (with a warning), so a token minted on a fresh machine
//! works against a fresh server.

use crate::auth::{Auth, Claims, Role};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Subject: the user id (an agent's id is what their calls and leads are keyed by).
    #[arg(long)]
    pub sub: String,
    #[arg(long)]
    pub tenant: String,
    /// agent, supervisor or admin.
    #[arg(long, value_parser = parse_role)]
    pub role: Role,
    /// The user's team (supervisors see their team's calls and leads).
    #[arg(long)]
    pub team: Option<String>,
    /// Lifetime: seconds, or a number with s, m, h or d (e.g. 90m, 12h, 7d).
    #[arg(long, default_value = "12h", value_parser = parse_ttl)]
    pub ttl: Duration,
    /// HS256 secret (at least 16 bytes).
    #[arg(long, env = "CALLCOACH_JWT_SECRET", hide_env_values = true)]
    pub secret: Option<String>,
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse::<Role>().map_err(|e| e.to_string())
}

/// Longest lifetime a development token may have: a leaked token should not outlive a sprint.
const MAX_TTL: Duration = Duration::from_secs(30 * 86_400);

pub(crate) fn parse_ttl(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 90m or 12h"))?;
    let secs = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        other => return Err(format!("unknown unit `{other}` (use s, m, h or d)")),
    };
    let ttl = Duration::from_secs(secs.ok_or("duration overflows")?);
    if ttl.is_zero() || ttl > MAX_TTL {
        return Err(format!(
            "ttl must be between 1s and {}d",
            MAX_TTL.as_secs() / 86_400
        ));
    }
    Ok(ttl)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let secret = match args.secret {
        Some(s) => {
            anyhow::ensure!(s.len() >= 16, "the secret must be at least 16 bytes");
            s
        }
        None => {
            eprintln!("warning: no --secret or CALLCOACH_JWT_SECRET; using the development secret");
            crate::config::DEV_JWT_SECRET.to_owned()
        }
    };
    anyhow::ensure!(
        !args.sub.is_empty() && !args.tenant.is_empty(),
        "--sub and --tenant must not be empty"
    );
    let claims = Claims::new(
        &args.sub,
        &args.tenant,
        args.role,
        args.team.as_deref(),
        args.ttl,
    );
    let token = Auth::hs256(secret.as_bytes()).mint(&claims)?;
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttls_parse_with_units() {
        assert_eq!(parse_ttl("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_ttl("15m").unwrap(), Duration::from_secs(900));
        assert_eq!(parse_ttl("12h").unwrap(), Duration::from_secs(43_200));
        assert_eq!(parse_ttl("7d").unwrap(), Duration::from_secs(604_800));
        assert!(parse_ttl("0").is_err());
        assert!(parse_ttl("31d").is_err());
        assert!(parse_ttl("5w").is_err());
        assert!(parse_ttl("h").is_err());
        assert!(parse_ttl("99999999999999999999d").is_err());
    }

    #[test]
    fn minted_token_verifies_with_the_same_secret() {
        let secret = "a-secret-of-sufficient-length";
        let claims = Claims::new("ann", "acme", Role::Agent, None, Duration::from_secs(60));
        let token = Auth::hs256(secret.as_bytes()).mint(&claims).unwrap();
        let p = Auth::hs256(secret.as_bytes()).verify(&token).unwrap();
        assert_eq!(p.sub, "ann");
    }
}
