//! The server's resident memory, read from `/proc/PID/status` (Linux), and a sampler that keeps
//! the highest value seen while a run goes on, and a reading every tenth of the run, so memory
//! that does not level off shows.

use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How often the sampler reads `/proc/PID/status` during a run.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// One reading of a process's memory, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RssSample {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the highest resident size since the process started.
    pub peak_kib: Option<u64>,
    /// `RssAnon`: the part of `VmRSS` that is the process's own memory (heap, stacks).
    pub anon_kib: Option<u64>,
    /// `RssFile`: the part that is mapped files, mostly the binary's own pages.
    pub file_kib: Option<u64>,
}

/// Reads `VmRSS` and `VmHWM` of `pid`; `None` when the process or the file is not there
/// (not Linux, process gone).
pub async fn read_rss(pid: u32) -> Option<RssSample> {
    let status = tokio::fs::read_to_string(format!("/proc/{pid}/status"))
        .await
        .ok()?;
    parse_status(&status)
}

fn parse_status(status: &str) -> Option<RssSample> {
    let field = |name: &str| {
        status.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            rest.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()
        })
    };
    Some(RssSample {
        rss_kib: field("VmRSS")?,
        peak_kib: field("VmHWM"),
        anon_kib: field("RssAnon"),
        file_kib: field("RssFile"),
    })
}

/// What a sampler saw over a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sampled {
    /// The sample with the highest `VmRSS`.
    pub max: Option<RssSample>,
    /// A sample at the start and then every `timeline_every`: time since the start, and RSS.
    pub timeline: Vec<(Duration, RssSample)>,
}

/// Samples a process's RSS until stopped.
pub(super) struct Sampler {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Sampled>,
}

impl Sampler {
    pub(super) fn start(pid: u32, timeline_every: Duration) -> Self {
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut sampled = Sampled::default();
            let mut next_point = started;
            loop {
                if let Some(sample) = read_rss(pid).await {
                    if sampled.max.is_none_or(|m| sample.rss_kib > m.rss_kib) {
                        sampled.max = Some(sample);
                    }
                    let now = Instant::now();
                    if now >= next_point {
                        sampled.timeline.push((now - started, sample));
                        next_point += timeline_every.max(SAMPLE_EVERY);
                    }
                }
                tokio::select! {
                    _ = &mut stopped => return sampled,
                    () = tokio::time::sleep(SAMPLE_EVERY) => {}
                }
            }
        });
        Self { stop, task }
    }

    /// Stops sampling; the highest RSS seen and the timeline.
    pub(super) async fn stop(self) -> Sampled {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rss_and_peak_from_proc_status() {
        let status = "Name:\tauthd\nVmHWM:\t   20480 kB\nVmRSS:\t   12345 kB\n\
                      RssAnon:\t    2345 kB\nRssFile:\t   10000 kB\nThreads:\t4\n";
        assert_eq!(
            parse_status(status),
            Some(RssSample {
                rss_kib: 12345,
                peak_kib: Some(20480),
                anon_kib: Some(2345),
                file_kib: Some(10000),
            })
        );
        assert_eq!(parse_status("Name:\tx\n"), None);
    }

    #[tokio::test]
    async fn reads_this_process() {
        if cfg!(target_os = "linux") {
            let sample = read_rss(std::process::id()).await.unwrap();
            assert!(sample.rss_kib > 0);
        }
    }
}
