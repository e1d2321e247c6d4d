//! The server's resident memory, read from `/proc/PID/status` (Linux), and a sampler that keeps
//! the highest value seen while a run goes on, a reading every tenth of the run (printed), so
//! memory that does not level off shows, and a denser trace for the picture ([`svg`]).

use std::time::{Duration, Instant};

use plotters::prelude::*;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::sweep::{draw_legend, draw_line};

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
    /// The same every [`TRACE_POINTS`]th of the run (at most every [`SAMPLE_EVERY`]).
    pub trace: Vec<(Duration, RssSample)>,
}

/// Points of [`Sampled::trace`] over a run.
pub const TRACE_POINTS: u32 = 200;

/// Samples a process's RSS until stopped.
pub(super) struct Sampler {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Sampled>,
}

impl Sampler {
    pub(super) fn start(pid: u32, timeline_every: Duration) -> Self {
        let (stop, mut stopped) = oneshot::channel();
        let trace_every = (timeline_every * 10 / TRACE_POINTS).max(SAMPLE_EVERY);
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut sampled = Sampled::default();
            let (mut next_point, mut next_trace) = (started, started);
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
                    if now >= next_trace {
                        sampled.trace.push((now - started, sample));
                        next_trace += trace_every;
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

/// The server's own memory (`RssAnon`; all of `VmRSS` where the kernel does not split it) and
/// its whole RSS against time over a run, as an SVG document: memory that levels off is a flat
/// line, a leak a slope, a purge or a cache filling a step.
///
/// # Errors
/// When there are no samples, or drawing fails.
pub fn svg(title: &str, trace: &[(Duration, RssSample)]) -> Result<String, String> {
    let end = trace.last().ok_or("no memory samples to draw")?.0;
    let mib = |kib: u64| kib as f64 / 1024.0;
    let own: Vec<(f64, f64)> = trace
        .iter()
        .map(|(at, s)| (at.as_secs_f64(), mib(s.anon_kib.unwrap_or(s.rss_kib))))
        .collect();
    let rss: Vec<(f64, f64)> = trace
        .iter()
        .map(|(at, s)| (at.as_secs_f64(), mib(s.rss_kib)))
        .collect();
    let top = rss.iter().map(|p| p.1).fold(1.0, f64::max) * 1.15;

    let mut document = String::new();
    {
        let root = SVGBackend::with_string(&mut document, (720, 400)).into_drawing_area();
        let fail = |e: DrawingAreaErrorKind<std::io::Error>| format!("cannot draw memory: {e}");
        root.fill(&WHITE).map_err(fail)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(14)
            .x_label_area_size(42)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..end.as_secs_f64().max(1.0), 0.0..top)
            .map_err(fail)?;
        chart
            .configure_mesh()
            .x_desc("seconds since the start of the run")
            .x_label_formatter(&|s| format!("{s:.0}"))
            .y_desc("MiB")
            .y_label_formatter(&|mib| format!("{mib:.0}"))
            .draw()
            .map_err(fail)?;
        draw_line(&mut chart, &rss, BLUE, "RSS", false).map_err(fail)?;
        draw_line(&mut chart, &own, RED, "own memory (RssAnon)", false).map_err(fail)?;
        draw_legend(&mut chart, SeriesLabelPosition::LowerRight).map_err(fail)?;
        root.present().map_err(fail)?;
    }
    Ok(document)
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

    #[test]
    fn draws_memory_against_time() {
        let sample = |anon| RssSample {
            rss_kib: anon + 10_000,
            peak_kib: None,
            anon_kib: Some(anon),
            file_kib: Some(10_000),
        };
        let trace = [
            (Duration::ZERO, sample(20_000)),
            (Duration::from_secs(30), sample(45_000)),
            (Duration::from_secs(60), sample(46_000)),
        ];
        let drawing = svg("refresh: memory", &trace).unwrap();
        assert!(drawing.starts_with("<svg"));
        for text in ["refresh: memory", "own memory (RssAnon)", "MiB"] {
            assert!(drawing.contains(text), "{text} drawn");
        }
        assert!(svg("empty", &[]).is_err());
    }
}
