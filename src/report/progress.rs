//! Live progress on stderr: `indicatif` bars on a terminal (an overall bar and a line per
//! host, or one summary line past [`MAX_HOST_LINES`] hosts), a plain line every few seconds
//! otherwise, or nothing. The text of every line is built by pure functions.

use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// More hosts than this get one summary line instead of a line each.
pub const MAX_HOST_LINES: usize = 20;
/// How often the plain mode prints.
pub const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// What `--progress` asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressFlag {
    /// Bars on a terminal, plain lines otherwise.
    Auto,
    Bars,
    Plain,
    None,
}

/// What is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Bars,
    Plain,
    None,
}

/// Why `--progress bars` shows plain lines instead: bars cannot be drawn off a terminal.
pub const BARS_NEED_A_TERMINAL: &str =
    "--progress bars needs a terminal on stderr; printing plain progress lines instead";

impl Mode {
    /// What to draw; `--progress bars` off a terminal falls back to plain lines (say so
    /// with [`BARS_NEED_A_TERMINAL`]), as the bars would not draw at all there.
    pub fn resolve(flag: ProgressFlag, quiet: bool, stderr_is_terminal: bool) -> Mode {
        match (quiet, flag) {
            (true, _) | (_, ProgressFlag::None) => Mode::None,
            (_, ProgressFlag::Bars) if stderr_is_terminal => Mode::Bars,
            (_, ProgressFlag::Bars) => Mode::Plain,
            (_, ProgressFlag::Plain) => Mode::Plain,
            (_, ProgressFlag::Auto) if stderr_is_terminal => Mode::Bars,
            (_, ProgressFlag::Auto) => Mode::Plain,
        }
    }
}

/// One host's line.
#[derive(Debug, Clone, PartialEq)]
pub struct HostLine {
    pub name: String,
    /// `up`, `connecting`, `waiting`, `reconnecting`, `quarantined` or `failed`.
    pub state: &'static str,
    pub running: u32,
    pub slots: u32,
    pub done: usize,
    pub failed: usize,
}

/// The run as it stands.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub total: usize,
    pub done: usize,
    pub failed: usize,
    pub running: u32,
    pub elapsed: Duration,
    pub paused: bool,
    pub hosts: Vec<HostLine>,
    /// Bytes file staging moved so far, both ways (0 without staging).
    pub staged: u64,
}

impl Snapshot {
    fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.done as f64 / secs
        } else {
            0.0
        }
    }

    fn eta(&self) -> Option<Duration> {
        let rate = self.rate();
        (rate > 0.0 && self.done < self.total)
            .then(|| Duration::from_secs_f64((self.total - self.done) as f64 / rate))
    }
}

fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, s % 3600 / 60)
    } else {
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// `done/total, failed, rate, ETA`, shared by the bar's message and the plain line.
pub fn counts(s: &Snapshot) -> String {
    let mut text = format!("{}/{} done", s.done, s.total);
    if s.failed > 0 {
        text.push_str(&format!(", {} failed", s.failed));
    }
    text.push_str(&format!(", {} running, {:.1} tasks/s", s.running, s.rate()));
    if s.staged > 0 {
        text.push_str(&format!(
            ", {:.1} MiB staged",
            s.staged as f64 / 1_048_576.0
        ));
    }
    if s.paused {
        text.push_str(", paused");
    } else if let Some(eta) = s.eta() {
        text.push_str(&format!(", ETA {}", clock(eta)));
    }
    text
}

/// The plain progress line.
pub fn plain_line(s: &Snapshot) -> String {
    format!("dts: [{}] {}", clock(s.elapsed), counts(s))
}

/// One host's line, columns aligned on `name_width`.
pub fn host_line(h: &HostLine, name_width: usize) -> String {
    let busy = format!("{}/{}", h.running, h.slots);
    format!(
        "  {:<name_width$}  {:<12} {busy:>7} running  {:>6} done  {:>4} failed",
        h.name, h.state, h.done, h.failed
    )
}

/// The one line that stands for many hosts.
pub fn hosts_summary(hosts: &[HostLine]) -> String {
    let count = |state: &str| hosts.iter().filter(|h| h.state == state).count();
    let (running, slots): (u32, u32) = hosts
        .iter()
        .fold((0, 0), |(r, s), h| (r + h.running, s + h.slots));
    let mut text = format!("  {} hosts: {} up", hosts.len(), count("up"));
    for state in [
        "connecting",
        "waiting",
        "reconnecting",
        "quarantined",
        "failed",
    ] {
        let n = count(state);
        if n > 0 {
            text.push_str(&format!(", {n} {state}"));
        }
    }
    text.push_str(&format!("; {running}/{slots} slots busy"));
    text
}

/// The live display.
pub struct Progress {
    mode: Mode,
    multi: MultiProgress,
    overall: Option<ProgressBar>,
    host_bars: Vec<ProgressBar>,
    last_plain: Option<Instant>,
    last_update: Option<Instant>,
    plain_text: String,
}

/// Bars redraw at most this often; updates between are skipped.
const BAR_UPDATE: Duration = Duration::from_millis(100);

impl Progress {
    pub fn new(mode: Mode, total: usize, hosts: usize) -> Progress {
        let multi = MultiProgress::with_draw_target(match mode {
            Mode::Bars => ProgressDrawTarget::stderr_with_hz(10),
            _ => ProgressDrawTarget::hidden(),
        });
        let mut progress = Progress {
            mode,
            multi,
            overall: None,
            host_bars: Vec::new(),
            // The first plain line comes after a full period: short runs print none.
            last_plain: Some(Instant::now()),
            last_update: None,
            plain_text: String::new(),
        };
        if mode == Mode::Bars {
            let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
            let bar = if color {
                "{bar:30.cyan/blue}"
            } else {
                "{bar:30}"
            };
            let style = ProgressStyle::with_template(&format!(
                "{{spinner}} [{{elapsed_precise}}] {bar} {{msg}}"
            ))
            .expect("valid template")
            .progress_chars("=> ");
            let overall = progress
                .multi
                .add(ProgressBar::new(total as u64).with_style(style));
            progress.overall = Some(overall);
            let lines = if hosts > MAX_HOST_LINES { 1 } else { hosts };
            let text = ProgressStyle::with_template("{msg}").expect("valid template");
            progress.host_bars = (0..lines)
                .map(|_| {
                    progress
                        .multi
                        .add(ProgressBar::new(1).with_style(text.clone()))
                })
                .collect();
        }
        progress
    }

    /// Takes the run's state; draws (bars) or prints (plain) when due.
    pub fn update(&mut self, snapshot: impl FnOnce() -> Snapshot) {
        let now = Instant::now();
        match self.mode {
            Mode::None => {}
            Mode::Bars => {
                if self.last_update.is_some_and(|at| now - at < BAR_UPDATE) {
                    return;
                }
                self.last_update = Some(now);
                self.draw(&snapshot());
            }
            Mode::Plain => {
                if self.last_plain.is_some_and(|at| now - at < PLAIN_EVERY) {
                    return;
                }
                let s = snapshot();
                let line = plain_line(&s);
                // Nothing new since the last line: stay quiet.
                let text = counts(&s);
                if text == self.plain_text {
                    return;
                }
                self.last_plain = Some(now);
                self.plain_text = text;
                eprintln!("{line}");
            }
        }
    }

    fn draw(&self, s: &Snapshot) {
        if let Some(bar) = &self.overall {
            bar.set_position(s.done as u64);
            bar.set_message(counts(s));
        }
        if s.hosts.len() > MAX_HOST_LINES {
            if let Some(bar) = self.host_bars.first() {
                bar.set_message(hosts_summary(&s.hosts));
            }
            return;
        }
        let width = s.hosts.iter().map(|h| h.name.len()).max().unwrap_or(0);
        for (bar, host) in self.host_bars.iter().zip(&s.hosts) {
            bar.set_message(host_line(host, width));
        }
    }

    /// Runs `f` (which writes task output) with the bars out of the way.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match self.mode {
            Mode::Bars => self.multi.suspend(f),
            _ => f(),
        }
    }

    /// Removes the bars before the end report.
    pub fn finish(&mut self) {
        if self.mode == Mode::Bars {
            for bar in self.overall.iter().chain(&self.host_bars) {
                bar.finish_and_clear();
            }
            let _ = self.multi.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> Snapshot {
        let host = |name: &str, state, running, done, failed| HostLine {
            name: name.into(),
            state,
            running,
            slots: 8,
            done,
            failed,
        };
        Snapshot {
            total: 2000,
            done: 480,
            failed: 3,
            running: 22,
            elapsed: Duration::from_secs(12),
            paused: false,
            hosts: vec![
                host("node01", "up", 8, 160, 1),
                host("node02", "up", 8, 158, 2),
                host("gpu-big-1", "reconnecting", 0, 12, 0),
                host("node04", "up", 6, 150, 0),
            ],
            staged: 0,
        }
    }

    #[test]
    fn the_counts_say_what_staging_moved() {
        let s = Snapshot {
            staged: 3 * 1_048_576,
            ..snapshot()
        };
        assert!(counts(&s).contains(", 3.0 MiB staged"), "{}", counts(&s));
        assert!(!counts(&snapshot()).contains("staged"));
    }

    #[test]
    fn plain_progress_lines() {
        let mut s = snapshot();
        let mut lines = vec![plain_line(&s)];
        s.paused = true;
        lines.push(plain_line(&s));
        s.paused = false;
        s.done = 2000;
        s.failed = 0;
        s.running = 0;
        lines.push(plain_line(&s));
        insta::assert_snapshot!(lines.join("\n"));
    }

    #[test]
    fn host_lines_and_summary() {
        let s = snapshot();
        let width = s.hosts.iter().map(|h| h.name.len()).max().unwrap();
        let mut lines: Vec<String> = s.hosts.iter().map(|h| host_line(h, width)).collect();
        lines.push(hosts_summary(&s.hosts));
        insta::assert_snapshot!(lines.join("\n"));
    }

    #[test]
    fn mode_follows_flag_terminal_and_quiet() {
        assert_eq!(Mode::resolve(ProgressFlag::Auto, false, true), Mode::Bars);
        assert_eq!(Mode::resolve(ProgressFlag::Auto, false, false), Mode::Plain);
        assert_eq!(Mode::resolve(ProgressFlag::Bars, true, true), Mode::None);
        assert_eq!(Mode::resolve(ProgressFlag::None, false, true), Mode::None);
        assert_eq!(Mode::resolve(ProgressFlag::Plain, false, true), Mode::Plain);
    }

    #[test]
    fn progress_bars_off_a_terminal_fall_back_to_plain_lines() {
        assert_eq!(Mode::resolve(ProgressFlag::Bars, false, true), Mode::Bars);
        assert_eq!(Mode::resolve(ProgressFlag::Bars, false, false), Mode::Plain);
    }
}
