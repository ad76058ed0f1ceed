//! Watches the server while the softphones run: CPU and RSS of its process from `/proc`
//! (`--server-pid`, same machine) and the transcription backlog from its `/metrics`.
//!
//! One sample a second: CPU is the change of utime+stime between samples (100 % = one core
//! busy), RSS is VmRSS, the backlog is the sum of the named gauge over its label sets.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Sampling period: one second resolves the backlog's trend over a call of minutes while
/// costing the server one `/metrics` render a second.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Sample {
    /// Seconds since the probe started.
    pub t_s: f64,
    /// CPU use since the previous sample, percent of one core.
    pub cpu_pct: Option<f64>,
    pub rss_kb: Option<u64>,
    pub threads: Option<u64>,
    pub backlog: Option<f64>,
}

/// CPU time (clock ticks), RSS and thread count of a process, read from `/proc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    pub cpu_ticks: u64,
    pub rss_kb: u64,
    pub threads: u64,
}

pub fn read_proc(pid: u32) -> std::io::Result<ProcStat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_proc(&stat, &status).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, "unexpected /proc format")
    })
}

/// Parses `/proc/<pid>/stat` (utime, stime: fields 14 and 15) and `/proc/<pid>/status`
/// (VmRSS, Threads). The command name in `stat` may hold spaces and parentheses, so fields are
/// counted after its last `)`.
pub fn parse_proc(stat: &str, status: &str) -> Option<ProcStat> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // `after` starts at field 3 (state): utime is field 14 -> index 11, stime index 12.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some(ProcStat {
        cpu_ticks: utime + stime,
        rss_kb: field("VmRSS:")?,
        threads: field("Threads:").unwrap_or(0),
    })
}

/// Clock ticks per second for `/proc` CPU times (`getconf CLK_TCK`; 100 on Linux when
/// `getconf` is missing — USER_HZ is 100 on every mainstream architecture).
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|&v| v > 0.0)
        .unwrap_or(100.0)
}

/// Sum of every sample of metric `name` in a Prometheus text exposition (all label sets).
pub fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let mut sum = None;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        // The name must end here: `name 3`, `name{...} 3`, not `name_total 3`.
        let value = if let Some(labels) = rest.strip_prefix('{') {
            labels.rsplit_once('}').map(|(_, v)| v)
        } else if rest.starts_with(' ') {
            Some(rest)
        } else {
            None
        };
        if let Some(v) = value
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
        {
            *sum.get_or_insert(0.0) += v;
        }
    }
    sum
}

/// A running probe; [`Probe::stop`] ends it and returns the samples.
pub struct Probe {
    samples: Arc<Mutex<Vec<Sample>>>,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Probe {
    /// Starts sampling `pid` and/or `metrics_url` (either may be absent).
    pub fn start(pid: Option<u32>, metrics_url: Option<String>, backlog_metric: String) -> Probe {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let (stop, mut stopped) = tokio::sync::oneshot::channel();
        let out = Arc::clone(&samples);
        let task = tokio::spawn(async move {
            let ticks = clock_ticks();
            let http = reqwest::Client::builder()
                .timeout(SAMPLE_EVERY)
                .build()
                .ok();
            let started = Instant::now();
            let mut prev: Option<(Instant, u64)> = None;
            let mut every = tokio::time::interval(SAMPLE_EVERY);
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = every.tick() => {}
                }
                let now = Instant::now();
                let proc = pid.and_then(|p| read_proc(p).ok());
                let cpu_pct = match (proc, prev) {
                    (Some(p), Some((t, c))) => {
                        let secs = now.duration_since(t).as_secs_f64();
                        Some((p.cpu_ticks.saturating_sub(c)) as f64 / ticks / secs * 100.0)
                    }
                    _ => None,
                };
                if let Some(p) = proc {
                    prev = Some((now, p.cpu_ticks));
                }
                let backlog = match (&http, &metrics_url) {
                    (Some(http), Some(url)) => match http.get(url).send().await {
                        Ok(r) => r
                            .text()
                            .await
                            .ok()
                            .and_then(|t| metric_sum(&t, &backlog_metric)),
                        Err(_) => None,
                    },
                    _ => None,
                };
                let sample = Sample {
                    t_s: now.duration_since(started).as_secs_f64(),
                    cpu_pct,
                    rss_kb: proc.map(|p| p.rss_kb),
                    threads: proc.map(|p| p.threads),
                    backlog,
                };
                // unwrap: the lock is only held for this push and in `stop`; neither panics.
                out.lock().unwrap().push(sample);
            }
        });
        Probe {
            samples,
            stop,
            task,
        }
    }

    pub async fn stop(self) -> Vec<Sample> {
        let _ = self.stop.send(());
        let _ = self.task.await;
        // unwrap: the sampling task has finished, so nobody else holds the lock.
        let samples = self.samples.lock().unwrap().clone();
        samples
    }
}

/// What the samples say, for the summary.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct ServerSummary {
    pub cpu_mean_pct: Option<f64>,
    pub cpu_max_pct: Option<f64>,
    pub rss_start_kb: Option<u64>,
    pub rss_peak_kb: Option<u64>,
    pub threads_peak: Option<u64>,
    pub backlog_max: Option<f64>,
    pub backlog_last: Option<f64>,
    /// Least-squares slope of the backlog over the run, items per second.
    pub backlog_slope_per_s: Option<f64>,
}

pub fn summarise(samples: &[Sample]) -> ServerSummary {
    let cpu: Vec<f64> = samples.iter().filter_map(|s| s.cpu_pct).collect();
    let backlog: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|s| s.backlog.map(|b| (s.t_s, b)))
        .collect();
    ServerSummary {
        cpu_mean_pct: (!cpu.is_empty()).then(|| cpu.iter().sum::<f64>() / cpu.len() as f64),
        cpu_max_pct: cpu.iter().copied().reduce(f64::max),
        rss_start_kb: samples.iter().find_map(|s| s.rss_kb),
        rss_peak_kb: samples.iter().filter_map(|s| s.rss_kb).max(),
        threads_peak: samples.iter().filter_map(|s| s.threads).max(),
        backlog_max: backlog.iter().map(|b| b.1).reduce(f64::max),
        backlog_last: backlog.last().map(|b| b.1),
        backlog_slope_per_s: slope(&backlog),
    }
}

fn slope(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 3 {
        return None;
    }
    let n = points.len() as f64;
    let (mx, my) = points
        .iter()
        .fold((0.0, 0.0), |a, p| (a.0 + p.0 / n, a.1 + p.1 / n));
    let (num, den) = points.iter().fold((0.0, 0.0), |a, p| {
        (a.0 + (p.0 - mx) * (p.1 - my), a.1 + (p.0 - mx).powi(2))
    });
    (den > 0.0).then(|| num / den)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files_even_with_odd_command_names() {
        let stat = "4242 (call coach) (x)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 9 0 100 1000000 500";
        let status = "Name:\tcallcoach\nVmPeak:\t  99999 kB\nVmRSS:\t   51234 kB\nThreads:\t9\n";
        assert_eq!(
            parse_proc(stat, status),
            Some(ProcStat {
                cpu_ticks: 325,
                rss_kb: 51_234,
                threads: 9
            })
        );
        assert_eq!(parse_proc("garbage", status), None);
        assert_eq!(parse_proc(stat, "Name: x\n"), None);
    }

    #[test]
    fn reads_this_process() {
        let me = read_proc(std::process::id()).unwrap();
        assert!(me.rss_kb > 0 && me.threads >= 1);
    }

    #[test]
    fn sums_a_metric_over_labels_only_by_exact_name() {
        let text = "# HELP q queue\n# TYPE q gauge\nq{kind=\"final\"} 3\nq{kind=\"partial\"} 4.5\nq_total 100\nqq 7\n";
        assert_eq!(metric_sum(text, "q"), Some(7.5));
        assert_eq!(metric_sum(text, "q_total"), Some(100.0));
        assert_eq!(metric_sum(text, "missing"), None);
        assert_eq!(metric_sum("x{a=\"}\"} 2\n", "x"), Some(2.0));
    }

    #[test]
    fn summary_finds_a_growing_backlog() {
        let samples: Vec<Sample> = (0..10)
            .map(|i| Sample {
                t_s: i as f64,
                cpu_pct: Some(50.0 + i as f64),
                rss_kb: Some(1_000 + i),
                threads: Some(4),
                backlog: Some(2.0 * i as f64),
            })
            .collect();
        let s = summarise(&samples);
        assert!((s.backlog_slope_per_s.unwrap() - 2.0).abs() < 1e-9);
        assert_eq!(
            (s.rss_start_kb, s.rss_peak_kb, s.backlog_last),
            (Some(1_000), Some(1_009), Some(18.0))
        );
        assert_eq!(s.cpu_max_pct, Some(59.0));
        assert_eq!(summarise(&[]), ServerSummary::default());
    }

    #[tokio::test]
    async fn probe_samples_a_live_process() {
        let probe = Probe::start(Some(std::process::id()), None, "x".into());
        tokio::time::sleep(Duration::from_millis(2_100)).await;
        let samples = probe.stop().await;
        assert!(samples.len() >= 2, "{samples:?}");
        assert!(samples[1].cpu_pct.is_some() && samples[0].rss_kb.is_some());
    }
}
