//! Host load probes: the one command run on every host when it connects (and again during a
//! run), the parser for its output, and the local equivalent through `sysinfo`.

use std::time::Duration;

/// What a probe learnt about a host. Fields the host did not report are `None`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProbeReport {
    /// The login shell (`$SHELL`), which decides how the wrapper is started.
    pub shell: String,
    /// `uname -s`.
    pub os: String,
    pub cores: Option<u32>,
    /// 1-, 5- and 15-minute load averages.
    pub load: Option<[f64; 3]>,
    pub mem_total_kib: Option<u64>,
    pub mem_available_kib: Option<u64>,
    /// Time the probe command took, round trip.
    pub latency: Duration,
    /// Whether `bash` is on the host's PATH (warm workers need it); None: not reported.
    pub bash: Option<bool>,
}

/// The probe, as one command line any login shell (sh, bash, zsh, csh, fish) can start.
/// It prints `key=value` lines, plus `MemTotal:`/`MemAvailable:` lines on Linux.
pub const COMMAND: &str = "exec /bin/sh -c 'echo \"shell=$SHELL\"; echo \"os=$(uname -s)\"; \
if [ -r /proc/loadavg ]; then read l < /proc/loadavg; echo \"loadavg=$l\"; \
else echo \"loadavg=$(sysctl -n vm.loadavg 2>/dev/null)\"; fi; \
echo \"cores=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null)\"; \
if [ -r /proc/meminfo ]; then grep -E \"^(MemTotal|MemAvailable):\" /proc/meminfo; \
else echo \"memtotal=$(sysctl -n hw.memsize 2>/dev/null || sysctl -n hw.physmem 2>/dev/null)\"; fi; \
if command -v bash >/dev/null 2>&1; then echo bash=yes; else echo bash=no; fi'";

/// Parses the probe's output; unknown or malformed lines are ignored.
pub fn parse(output: &[u8], latency: Duration) -> ProbeReport {
    let text = String::from_utf8_lossy(output);
    let mut report = ProbeReport {
        latency,
        ..ProbeReport::default()
    };
    for line in text.lines() {
        if let Some((key, value)) = line.split_once('=') {
            apply_pair(&mut report, key, value.trim());
        } else if let Some((key, value)) = line.split_once(':') {
            apply_meminfo(&mut report, key, value);
        }
    }
    report
}

fn apply_pair(report: &mut ProbeReport, key: &str, value: &str) {
    match key {
        "shell" => report.shell = value.to_string(),
        "os" => report.os = value.to_string(),
        "cores" => report.cores = value.parse().ok().filter(|&n| n > 0),
        "loadavg" => report.load = parse_loadavg(value),
        "memtotal" => report.mem_total_kib = value.parse::<u64>().ok().map(|b| b / 1024),
        "bash" => report.bash = Some(value == "yes"),
        _ => {}
    }
}

fn apply_meminfo(report: &mut ProbeReport, key: &str, value: &str) {
    let kib = value.trim().trim_end_matches("kB").trim().parse().ok();
    match key {
        "MemTotal" => report.mem_total_kib = kib,
        "MemAvailable" => report.mem_available_kib = kib,
        _ => {}
    }
}

/// Linux `0.52 0.41 0.30 1/234 5678` or BSD `{ 0.52 0.41 0.30 }`.
fn parse_loadavg(value: &str) -> Option<[f64; 3]> {
    let mut numbers = value
        .split(|c: char| c.is_whitespace() || c == '{' || c == '}')
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<f64>().ok());
    Some([numbers.next()??, numbers.next()??, numbers.next()??])
}

/// Probes the machine dts runs on.
pub fn local() -> ProbeReport {
    use sysinfo::{MemoryRefreshKind, RefreshKind, System};
    let started = std::time::Instant::now();
    let system = System::new_with_specifics(
        RefreshKind::nothing().with_memory(MemoryRefreshKind::everything()),
    );
    let load = System::load_average();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    ProbeReport {
        shell: "/bin/sh".into(),
        os: System::name().unwrap_or_default(),
        cores: Some(cores),
        load: Some([load.one, load.five, load.fifteen]),
        mem_total_kib: Some(system.total_memory() / 1024),
        mem_available_kib: Some(system.available_memory() / 1024),
        latency: started.elapsed(),
        bash: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_linux_output() {
        let out = b"shell=/bin/bash\nos=Linux\nloadavg=0.52 0.41 0.30 1/234 5678\ncores=8\n\
MemTotal:       16314444 kB\nMemAvailable:   12000000 kB\n";
        let report = parse(out, Duration::from_millis(3));
        assert_eq!(report.shell, "/bin/bash");
        assert_eq!(report.os, "Linux");
        assert_eq!(report.cores, Some(8));
        assert_eq!(report.load, Some([0.52, 0.41, 0.30]));
        assert_eq!(report.mem_total_kib, Some(16314444));
        assert_eq!(report.mem_available_kib, Some(12000000));
    }

    #[test]
    fn parses_bsd_output() {
        let out = b"shell=/usr/local/bin/fish\nos=FreeBSD\nloadavg={ 1.00 0.50 0.25 }\ncores=4\nmemtotal=8589934592\n";
        let report = parse(out, Duration::ZERO);
        assert_eq!(report.load, Some([1.0, 0.5, 0.25]));
        assert_eq!(report.cores, Some(4));
        assert_eq!(report.mem_total_kib, Some(8 * 1024 * 1024));
        assert_eq!(report.mem_available_kib, None);
    }

    #[test]
    fn bash_on_the_host_is_reported() {
        assert_eq!(parse(b"bash=yes\n", Duration::ZERO).bash, Some(true));
        assert_eq!(parse(b"bash=no\n", Duration::ZERO).bash, Some(false));
        assert_eq!(parse(b"cores=2\n", Duration::ZERO).bash, None);
    }

    #[test]
    fn tolerates_garbage() {
        let report = parse(b"cores=\nloadavg=x y z\nnoise\n\xff\xfe", Duration::ZERO);
        assert_eq!(report.cores, None);
        assert_eq!(report.load, None);
    }

    #[test]
    fn the_command_runs_here() {
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(COMMAND)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report = parse(&out.stdout, Duration::ZERO);
        assert!(report.cores.unwrap() >= 1);
        assert!(report.load.is_some());
        assert!(report.mem_available_kib.is_some());
    }

    #[test]
    fn local_probe_reports_cores_and_memory() {
        let report = local();
        assert!(report.cores.unwrap() >= 1);
        assert!(report.mem_total_kib.unwrap() > 0);
    }
}
