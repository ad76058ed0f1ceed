//! `callcoach loadgen` — N simultaneous softphones over real sockets against a running server,
//! each streaming the generated two-speaker call in real time (20 ms frames, both tracks
//! speaking in turn), starts staggered. Measures speech end → `final` and → `hint` latency
//! against the call's ground-truth timeline, partial cadence, missed/late/duplicate events and
//! errors, and samples the server's CPU, RSS and transcription backlog while it runs.
//!
//! `--find-capacity` ramps N until final p95 crosses `--threshold-ms` or the backlog grows, and
//! reports the largest N that held. `--ingest-only` is for a server started with transcription
//! disabled: the figures that matter are then errors, clean ends, CPU and RSS per call.
//!
//! `--idle-secs N` holds every call connected and started but silent for N seconds before a
//! moment of audio: the per-call cost of calls that are on hold or between utterances (CPU and
//! RSS over the steady part of the hold).
//!
//! Output: a JSON summary on stdout (or `--json FILE`) and a human table on stderr.

mod analysis;
mod probe;

use crate::client::call::{self, Timeline};
use crate::client::replay::{self, Prepared, Protocol, ReplayOptions, TrackLayout};
use analysis::{CallStats, Percentiles};
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Server: `ws://host:port`.
    #[arg(long, default_value = "ws://127.0.0.1:8080")]
    pub url: String,
    #[arg(long, value_enum, default_value_t = Protocol::Native)]
    pub protocol: Protocol,
    /// Simultaneous calls (the first level with --find-capacity).
    #[arg(long, default_value_t = 4)]
    pub calls: usize,
    /// Delay between call starts.
    #[arg(long, default_value_t = 1_000)]
    pub stagger_ms: u64,
    /// Ground-truth timeline JSON of the call to stream (default: the generated sales call,
    /// rendered into target/calls on first use).
    #[arg(long)]
    pub call: Option<PathBuf>,
    /// Stream only the first N ms of the call (shorter capacity steps).
    #[arg(long, value_name = "MS")]
    pub max_ms: Option<u64>,
    #[arg(long, env = "CALLCOACH_TOKEN")]
    pub token: Option<String>,
    /// Agent id of every call (default: one per call, `loadgen-agent-<k>`); an agent's own
    /// token may only stream as that agent.
    #[arg(long)]
    pub agent_id: Option<String>,
    /// Server process to sample CPU and RSS of (same machine).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Prometheus endpoint (default: http://<host:port of --url>/metrics).
    #[arg(long)]
    pub metrics_url: Option<String>,
    /// Do not scrape /metrics.
    #[arg(long)]
    pub no_metrics: bool,
    /// Gauge holding the transcription backlog (summed over labels).
    #[arg(long, default_value = "callcoach_transcriber_queue_depth_jobs")]
    pub backlog_metric: String,
    /// Ramp the number of calls until final p95 crosses --threshold-ms or the backlog grows.
    #[arg(long)]
    pub find_capacity: bool,
    #[arg(long, default_value_t = 1_000)]
    pub threshold_ms: i64,
    /// Calls added per capacity step.
    #[arg(long, default_value_t = 2)]
    pub step: usize,
    /// Highest level the capacity search tries.
    #[arg(long, default_value_t = 64)]
    pub max_calls: usize,
    /// The server runs without transcription: report connections, CPU and RSS per call.
    #[arg(long)]
    pub ingest_only: bool,
    /// Hold each call connected and silent this long (idle calls), then stream 200 ms.
    #[arg(long, value_name = "SECS")]
    pub idle_secs: Option<u64>,
    /// Also watch each agent's overlay socket (one more connection per call).
    #[arg(long)]
    pub overlay: bool,
    /// Write the JSON summary here instead of stdout.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// List every matched final (track, span, speech end, latency, text) in the JSON summary.
    #[arg(long)]
    pub per_final: bool,
}

/// One level's numbers.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub protocol: Protocol,
    pub calls: usize,
    pub stagger_ms: u64,
    pub audio_ms: u64,
    pub ingest_only: bool,
    pub wall_ms: u64,
    pub final_latency_ms: Percentiles,
    pub hint_latency_ms: Percentiles,
    pub talk_hint_delivery_ms: Percentiles,
    pub partial_interval_ms: Percentiles,
    /// Median final latency of the last third of the call minus the first third.
    pub final_trend_ms: Option<i64>,
    pub counts: Counts,
    pub hint_rules: BTreeMap<String, usize>,
    pub errors: BTreeMap<String, usize>,
    pub warnings: BTreeMap<String, usize>,
    pub connect_errors: BTreeMap<String, usize>,
    pub client_late_frames: usize,
    pub client_max_lateness_ms: u64,
    pub server: probe::ServerSummary,
    /// (peak RSS - RSS before the calls) / calls.
    pub rss_per_call_kb: Option<f64>,
    pub cpu_mean_per_call_pct: Option<f64>,
    pub idle: Option<IdleFigures>,
    /// With `--per-final`: every matched final, in arrival order per call.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub finals: Vec<analysis::FinalRecord>,
}

/// The server while every call is connected and silent (`--idle-secs`).
#[derive(Debug, Clone, Serialize)]
pub struct IdleFigures {
    /// Probe seconds averaged: from 2 s after the last call connected to 1 s before the first
    /// hold ends.
    pub window_s: (f64, f64),
    /// Server CPU, percent of one core, mean over the window (all calls together).
    pub cpu_mean_pct: Option<f64>,
    /// (mean RSS over the window - RSS before the calls) / calls.
    pub rss_per_call_kb: Option<f64>,
}

impl IdleFigures {
    fn of(samples: &[probe::Sample], calls: usize, stagger_ms: u64, hold_s: u64) -> Self {
        let settle = probe::SAMPLE_EVERY.as_secs_f64() + 0.1;
        let from = settle + (stagger_ms * calls.saturating_sub(1) as u64) as f64 / 1000.0 + 2.0;
        let to = settle + hold_s as f64 - 1.0;
        let window: Vec<&probe::Sample> = samples
            .iter()
            .filter(|s| s.t_s >= from && s.t_s <= to)
            .collect();
        let mean = |v: Vec<f64>| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
        let cpu_mean_pct = mean(window.iter().filter_map(|s| s.cpu_pct).collect());
        let rss_mean = mean(
            window
                .iter()
                .filter_map(|s| s.rss_kb.map(|r| r as f64))
                .collect(),
        );
        let rss_start = samples.iter().find_map(|s| s.rss_kb).map(|r| r as f64);
        IdleFigures {
            window_s: (from, to),
            cpu_mean_pct,
            rss_per_call_kb: rss_mean
                .zip(rss_start)
                .map(|(m, s)| (m - s).max(0.0) / calls.max(1) as f64),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Counts {
    pub finals: usize,
    pub partials: usize,
    pub hints: usize,
    pub script_lines: usize,
    pub missed_lines: usize,
    pub unmatched_finals: usize,
    pub late_finals: usize,
    pub duplicate_finals: usize,
    pub bad_ends: usize,
}

#[derive(Debug, Serialize)]
struct Capacity {
    threshold_ms: i64,
    /// The largest number of calls that held (None: not even the first level).
    capacity: Option<usize>,
    stopped_because: String,
    levels: Vec<Summary>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.calls == 0 || args.step == 0 {
        anyhow::bail!("--calls and --step must be at least 1");
    }
    let timeline = match &args.call {
        Some(path) => Timeline::load(path)?,
        None => call::generate(&call::default_dir())?,
    };
    let mut audio = crate::client::audio::load(&timeline.wav_path())?;
    if let Some(ms) = args.max_ms {
        audio.truncate_ms(ms);
    }
    if args.idle_secs.is_some() {
        // The hold is the measurement; a moment of audio afterwards proves the call still works.
        audio.truncate_ms(args.max_ms.unwrap_or(200).min(200));
    }
    let agent_channel = timeline
        .channel_tracks
        .iter()
        .position(|t| *t == crate::actors::event::Track::Agent)
        .unwrap_or(0);
    let prepared = Arc::new(Prepared::new(
        &audio,
        args.protocol,
        TrackLayout {
            agent_channel,
            ..TrackLayout::default()
        },
    )?);
    let timeline = Arc::new(timeline);
    let metrics_url = if args.no_metrics {
        None
    } else {
        Some(
            args.metrics_url
                .clone()
                .unwrap_or_else(|| metrics_url_of(&args.url)),
        )
    };

    // The softphones are I/O-bound; two worker threads keep up with hundreds of streams while
    // leaving the other core(s) to the server on a small machine.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let json = if args.find_capacity {
        let mut levels = Vec::new();
        let mut capacity = None;
        let mut n = args.calls;
        let stopped_because = loop {
            let s = rt.block_on(level(n, &args, &prepared, &timeline, metrics_url.clone()));
            print_table(std::slice::from_ref(&s));
            let verdict = holds(&s, &args);
            levels.push(s);
            match verdict {
                Ok(()) => capacity = Some(n),
                Err(why) => break format!("{n} calls: {why}"),
            }
            if n + args.step > args.max_calls {
                break format!("reached --max-calls {}", args.max_calls);
            }
            n += args.step;
        };
        eprintln!("capacity: {capacity:?} calls ({stopped_because})");
        serde_json::to_string_pretty(&Capacity {
            threshold_ms: args.threshold_ms,
            capacity,
            stopped_because,
            levels,
        })?
    } else {
        let s = rt.block_on(level(args.calls, &args, &prepared, &timeline, metrics_url));
        print_table(std::slice::from_ref(&s));
        serde_json::to_string_pretty(&s)?
    };
    match &args.json {
        Some(path) => std::fs::write(path, json + "\n")?,
        None => println!("{json}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether a level holds: every call connected and ended cleanly without errors, final p95
/// within the threshold, and the backlog not growing.
fn holds(s: &Summary, args: &Args) -> Result<(), String> {
    if !s.connect_errors.is_empty() {
        return Err(format!("connect errors {:?}", s.connect_errors));
    }
    if !s.errors.is_empty() {
        return Err(format!("server errors {:?}", s.errors));
    }
    if s.counts.bad_ends > 0 {
        return Err(format!("{} calls did not end cleanly", s.counts.bad_ends));
    }
    if args.ingest_only || args.idle_secs.is_some() {
        return Ok(());
    }
    match s.final_latency_ms.p95 {
        None => return Err("no finals".into()),
        Some(p95) if p95 > args.threshold_ms => {
            return Err(format!("final p95 {p95} ms > {} ms", args.threshold_ms))
        }
        Some(_) => {}
    }
    // Growth: finals late in the call lag the early ones by more than half the threshold, or
    // the queue gauge climbs by more than one item every 10 s on average.
    if let Some(trend) = s.final_trend_ms.filter(|t| *t > args.threshold_ms / 2) {
        return Err(format!("final latency grew {trend} ms over the call"));
    }
    if let Some(slope) = s.server.backlog_slope_per_s.filter(|v| *v > 0.1) {
        return Err(format!("backlog grows {slope:.2}/s"));
    }
    Ok(())
}

/// Runs `n` staggered calls to the end and summarises them.
async fn level(
    n: usize,
    args: &Args,
    prepared: &Arc<Prepared>,
    timeline: &Arc<Timeline>,
    metrics_url: Option<String>,
) -> Summary {
    eprintln!(
        "loadgen: {n} calls, {} protocol, {} ms of audio each, {} ms apart",
        args.protocol, prepared.audio_ms, args.stagger_ms
    );
    let probe = probe::Probe::start(args.server_pid, metrics_url, args.backlog_metric.clone());
    // Let the probe take its baseline (RSS before any call, first CPU reading).
    tokio::time::sleep(probe::SAMPLE_EVERY + Duration::from_millis(100)).await;
    let started = Instant::now();
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let mut tasks = Vec::with_capacity(n);
    for k in 0..n {
        let prepared = Arc::clone(prepared);
        let mut opts = ReplayOptions::new(args.url.clone());
        opts.call_id = format!("loadgen-{}-{k}", &run_id[..8]);
        opts.token = args.token.clone();
        opts.lead_id = Some(format!("loadgen-lead-{k}"));
        opts.agent_id = Some(
            args.agent_id
                .clone()
                .unwrap_or_else(|| format!("loadgen-agent-{k}")),
        );
        opts.overlay = args.overlay;
        opts.realtime = true;
        opts.hold = Duration::from_secs(args.idle_secs.unwrap_or(0));
        let delay = Duration::from_millis(args.stagger_ms * k as u64);
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            replay::replay(&prepared, &opts, |_| {}).await
        }));
    }
    let mut stats = CallStats::default();
    let mut connect_errors = BTreeMap::new();
    for t in tasks {
        match t.await {
            Ok(Ok(outcome)) => stats.add(&outcome, timeline, prepared.audio_ms),
            Ok(Err(e)) => *connect_errors.entry(error_class(&e)).or_default() += 1,
            Err(e) => *connect_errors.entry(format!("task: {e}")).or_default() += 1,
        }
    }
    let wall_ms = started.elapsed().as_millis() as u64;
    let samples = probe.stop().await;
    let server = probe::summarise(&samples);
    let idle = args
        .idle_secs
        .map(|hold| IdleFigures::of(&samples, n, args.stagger_ms, hold));
    if let Some(idle) = &idle {
        eprintln!(
            "idle: {n} calls, server CPU {} % of a core, RSS {} KB per call (probe {:.0}-{:.0} s)",
            idle.cpu_mean_pct.map_or("-".into(), |c| format!("{c:.2}")),
            idle.rss_per_call_kb
                .map_or("-".into(), |r| format!("{r:.0}")),
            idle.window_s.0,
            idle.window_s.1,
        );
    }
    let rss_per_call_kb = match (server.rss_start_kb, server.rss_peak_kb) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / n as f64),
        _ => None,
    };
    Summary {
        protocol: args.protocol,
        calls: n,
        stagger_ms: args.stagger_ms,
        audio_ms: prepared.audio_ms,
        ingest_only: args.ingest_only,
        wall_ms,
        final_latency_ms: Percentiles::of(&stats.final_ms),
        hint_latency_ms: Percentiles::of(&stats.hint_ms),
        talk_hint_delivery_ms: Percentiles::of(&stats.talk_hint_ms),
        partial_interval_ms: Percentiles::of(&stats.partial_gap_ms),
        final_trend_ms: stats.final_trend_ms(),
        counts: Counts {
            finals: stats.finals,
            partials: stats.partials,
            hints: stats.hints,
            script_lines: stats.lines,
            missed_lines: stats.missed_lines,
            unmatched_finals: stats.unmatched_finals,
            late_finals: stats.late_finals,
            duplicate_finals: stats.duplicate_finals,
            bad_ends: stats.bad_ends,
        },
        hint_rules: stats.hint_kinds,
        errors: stats.errors,
        warnings: stats.warnings,
        connect_errors,
        client_late_frames: stats.late_frames,
        client_max_lateness_ms: stats.max_lateness_ms,
        cpu_mean_per_call_pct: server.cpu_mean_pct.map(|c| c / n as f64),
        server,
        rss_per_call_kb,
        idle,
        finals: if args.per_final {
            std::mem::take(&mut stats.final_records)
        } else {
            Vec::new()
        },
    }
}

/// A connect error's class without the per-call URL, so equal failures count together.
fn error_class(e: &crate::client::ClientError) -> String {
    use crate::client::ClientError as E;
    match e {
        E::Connect { source, .. } => format!("connect: {source}"),
        E::ConnectTimeout { .. } => "connect timeout".into(),
        other => other.to_string(),
    }
}

/// `ws://host:port/...` → `http://host:port/metrics`.
fn metrics_url_of(ws: &str) -> String {
    let (scheme, rest) = match ws.strip_prefix("wss://") {
        Some(rest) => ("https", rest),
        None => ("http", ws.strip_prefix("ws://").unwrap_or(ws)),
    };
    let host = rest.split(['/', '?']).next().unwrap_or(rest);
    format!("{scheme}://{host}/metrics")
}

fn fmt_p(p: &Percentiles) -> String {
    let f = |v: Option<i64>| v.map_or("-".to_string(), |v| v.to_string());
    format!("{}/{}/{}", f(p.p50), f(p.p95), f(p.p99))
}

fn print_table(levels: &[Summary]) {
    eprintln!(
        "{:>5} {:>7} {:>17} {:>6} {:>17} {:>9} {:>7} {:>7} {:>13} {:>12} {:>9}",
        "calls",
        "finals",
        "final p50/95/99",
        "hints",
        "hint p50/95/99",
        "partialΔ",
        "missed",
        "errors",
        "cpu mean/max%",
        "rss MB/call",
        "backlog"
    );
    for s in levels {
        let errors: usize = s.errors.values().sum::<usize>()
            + s.connect_errors.values().sum::<usize>()
            + s.counts.bad_ends;
        eprintln!(
            "{:>5} {:>7} {:>17} {:>6} {:>17} {:>9} {:>7} {:>7} {:>13} {:>12} {:>9}",
            s.calls,
            s.counts.finals,
            fmt_p(&s.final_latency_ms),
            s.counts.hints,
            fmt_p(&s.hint_latency_ms),
            s.partial_interval_ms
                .p50
                .map_or("-".into(), |v| v.to_string()),
            format!("{}/{}", s.counts.missed_lines, s.counts.script_lines),
            errors,
            match (s.server.cpu_mean_pct, s.server.cpu_max_pct) {
                (Some(a), Some(b)) => format!("{a:.0}/{b:.0}"),
                _ => "-".into(),
            },
            s.rss_per_call_kb
                .map_or("-".into(), |v| format!("{:.2}", v / 1024.0)),
            s.server
                .backlog_max
                .map_or("-".into(), |v| format!("{v:.0}")),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_url_follows_the_ws_url() {
        assert_eq!(
            metrics_url_of("ws://127.0.0.1:8080"),
            "http://127.0.0.1:8080/metrics"
        );
        assert_eq!(
            metrics_url_of("wss://h:443/v1/x?y"),
            "https://h:443/metrics"
        );
    }
}
