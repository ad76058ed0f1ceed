//! `callcoach replay FILE --url ws://…` — act as a softphone: stream a recording to a server in
//! 20 ms frames (native or Twilio protocol) and print every server event as a JSON line with
//! its arrival time `t_ms` since the first frame. The streaming itself is
//! [`crate::client::replay`], shared with `loadgen` and the integration tests.

use crate::actors::event::Track;
use crate::client::replay::{self, End, Prepared, Protocol, ReplayOptions, TrackLayout};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Recording to stream (WAV/FLAC/MP3/OGG; mono or stereo).
    pub file: PathBuf,
    /// Server: `ws://host:port` (the protocol's path is added) or a full stream URL.
    #[arg(long, default_value = "ws://127.0.0.1:8080")]
    pub url: String,
    #[arg(long, value_enum, default_value_t = Protocol::Native)]
    pub protocol: Protocol,
    /// Pace frames in real time (otherwise as fast as the socket takes them).
    #[arg(long)]
    pub realtime: bool,
    /// With --realtime: play faster (2 = twice real time) or slower.
    #[arg(long, default_value_t = 1.0, value_parser = parse_speed)]
    pub speed: f64,
    /// Stereo recordings: the channel that carries the agent (the other is the customer).
    #[arg(long, value_name = "CHANNEL", default_value_t = 0)]
    pub agent_track: usize,
    /// Mono recordings: whose voice it is.
    #[arg(long, default_value = "mixed")]
    pub track: Track,
    /// Bearer token (JWT), e.g. from `callcoach token`.
    #[arg(long, env = "CALLCOACH_TOKEN")]
    pub token: Option<String>,
    #[arg(long)]
    pub lead_id: Option<String>,
    #[arg(long)]
    pub agent_id: Option<String>,
    /// Native protocol: the call id in the stream path (random when omitted).
    #[arg(long)]
    pub call_id: Option<String>,
    /// Also print what the agent's overlay receives (needs --agent-id).
    #[arg(long)]
    pub overlay: bool,
    /// Stream only the first N milliseconds of the recording.
    #[arg(long, value_name = "MS")]
    pub max_ms: Option<u64>,
    /// Seconds to wait after `stop` for the server's `ended`.
    #[arg(long, default_value_t = 30)]
    pub drain_timeout_s: u64,
}

fn parse_speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.1..=100.0).contains(&v) => Ok(v),
        _ => Err(format!("`{s}` is not a speed between 0.1 and 100")),
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut audio = crate::client::audio::load(&args.file)?;
    if let Some(ms) = args.max_ms {
        audio.truncate_ms(ms);
    }
    let layout = TrackLayout {
        agent_channel: args.agent_track,
        mono_track: args.track,
    };
    let prepared = Prepared::new(&audio, args.protocol, layout)?;
    let mut opts = ReplayOptions::new(args.url);
    if let Some(id) = args.call_id {
        opts.call_id = id;
    }
    opts.token = args.token;
    opts.lead_id = args.lead_id;
    opts.agent_id = args.agent_id;
    opts.realtime = args.realtime;
    opts.speed = args.speed;
    opts.overlay = args.overlay;
    opts.drain_timeout = Duration::from_secs(args.drain_timeout_s);

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stdout = std::io::stdout();
    let outcome = rt.block_on(replay::replay(&prepared, &opts, |ev| {
        let mut out = stdout.lock();
        // A closed stdout (`| head`) must not stop the call mid-stream; ignore write errors.
        let _ = writeln!(out, "{}", ev.to_line());
        let _ = out.flush();
    }))?;

    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    for e in &outcome.events {
        *counts.entry(e.kind()).or_default() += 1;
    }
    eprintln!(
        "replay: {} frames ({} ms of audio) over {}, {} events {:?}, end: {:?}{}",
        outcome.frames_sent,
        outcome.frames_sent as u64 * replay::FRAME_MS,
        args.protocol,
        outcome.events.len(),
        counts,
        outcome.end,
        if outcome.late_frames > 0 {
            format!(
                ", {} frames sent late (worst {} ms)",
                outcome.late_frames, outcome.max_lateness_ms
            )
        } else {
            String::new()
        }
    );
    let clean = outcome.stopped && matches!(outcome.end, End::Ended { .. } | End::Closed { .. });
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
