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
    /// GPUs `nvidia-smi -L` lists; `None` where there is no `nvidia-smi`.
    pub gpus: Option<u32>,
    /// Whether `perl` is on the host's PATH (warm workers need it); None: not reported.
    pub perl: Option<bool>,
}

/// The probe, as one command line any login shell (sh, bash, zsh, csh, fish) can start.
/// It prints `key=value` lines, plus `MemTotal:`/`MemAvailable:` lines on Linux.
pub const COMMAND: &str = "exec /bin/sh -c 'echo \"shell=$SHELL\"; echo \"os=$(uname -s)\"; \
if [ -r /proc/loadavg ]; then read l < /proc/loadavg; echo \"loadavg=$l\"; \
else echo \"loadavg=$(sysctl -n vm.loadavg 2>/dev/null)\"; fi; \
echo \"cores=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || sysctl -n hw.ncpu 2>/dev/null)\"; \
if [ -r /proc/meminfo ]; then grep -E \"^(MemTotal|MemAvailable):\" /proc/meminfo; \
else echo \"memtotal=$(sysctl -n hw.memsize 2>/dev/null || sysctl -n hw.physmem 2>/dev/null)\"; fi; \
if command -v nvidia-smi >/dev/null 2>&1; then nvidia-smi -L 2>/dev/null | sed -n \"s/^GPU \\([0-9]*\\):.*/gpu=\\1/p\"; echo gpus-listed; fi; \
if command -v perl >/dev/null 2>&1; then echo perl=yes; else echo perl=no; fi'";

/// Parses the probe's output; unknown or malformed lines are ignored.
pub fn parse(output: &[u8], latency: Duration) -> ProbeReport {
    let text = String::from_utf8_lossy(output);
    let mut report = ProbeReport {
        latency,
        ..ProbeReport::default()
    };
    for line in text.lines() {
        if line == "gpus-listed" {
            // nvidia-smi ran: no `gpu=` line before this means none.
            report.gpus.get_or_insert(0);
        } else if let Some((key, value)) = line.split_once('=') {
            apply_pair(&mut report, key, value.trim());
        } else if let Some((key, value)) = line.split_once(':') {
            apply_meminfo(&mut report, key, value);
        }
    }
    report
}

fn apply_pair(report: &mut ProbeReport, key: &str, value: &str) {
    match key {
        // One `gpu=N` line per GPU `nvidia-smi -L` listed (`GPU 0: NVIDIA A100 (UUID: ...)`).
        "gpu" if value.parse::<u32>().is_ok() => {
            report.gpus = Some(report.gpus.unwrap_or(0) + 1);
        }
        "shell" => report.shell = value.to_string(),
        "os" => report.os = value.to_string(),
        "cores" => report.cores = value.parse().ok().filter(|&n| n > 0),
        "loadavg" => report.load = parse_loadavg(value),
        "memtotal" => report.mem_total_kib = value.parse::<u64>().ok().map(|b| b / 1024),
        "perl" => report.perl = Some(value == "yes"),
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
        gpus: local_gpus(),
        perl: None,
    }
}

/// `nvidia-smi -L` on this machine: the GPUs it lists, `None` without it.
fn local_gpus() -> Option<u32> {
    let out = std::process::Command::new("nvidia-smi")
        .arg("-L")
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    Some(count_gpus(&String::from_utf8_lossy(&out.stdout)))
}

/// The GPUs in `nvidia-smi -L` output: its `GPU N: ...` lines (MIG devices, listed
/// indented under their GPU, do not count).
pub fn count_gpus(listing: &str) -> u32 {
    listing
        .lines()
        .filter(|l| {
            l.strip_prefix("GPU ")
                .and_then(|rest| rest.split_once(':'))
                .is_some_and(|(n, _)| n.parse::<u32>().is_ok())
        })
        .count() as u32
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
    fn perl_on_the_host_is_reported() {
        assert_eq!(parse(b"perl=yes\n", Duration::ZERO).perl, Some(true));
        assert_eq!(parse(b"perl=no\n", Duration::ZERO).perl, Some(false));
        assert_eq!(parse(b"cores=2\n", Duration::ZERO).perl, None);
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

    const NVIDIA_SMI_L: &str =
        "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-5e2f3c8a-1b7d-4e6f-9a0c-2d3e4f5a6b7c)
GPU 1: NVIDIA A100-SXM4-40GB (UUID: GPU-8c1d2e3f-4a5b-6c7d-8e9f-0a1b2c3d4e5f)
  MIG 3g.20gb     Device  0: (UUID: MIG-0f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b)
GPU 2: Tesla V100-PCIE-16GB (UUID: GPU-1a2b3c4d-5e6f-7a8b-9c0d-1e2f3a4b5c6d)
";

    #[test]
    fn counts_the_gpus_nvidia_smi_lists() {
        assert_eq!(count_gpus(NVIDIA_SMI_L), 3);
        assert_eq!(count_gpus(""), 0);
        assert_eq!(
            count_gpus("NVIDIA-SMI has failed because it couldn't communicate"),
            0
        );
    }

    #[test]
    fn the_probe_script_turns_nvidia_smi_output_into_a_gpu_count() {
        // The sed expression of COMMAND, run on real `nvidia-smi -L` output.
        let script = COMMAND
            .split("nvidia-smi -L 2>/dev/null | ")
            .nth(1)
            .and_then(|rest| rest.split("; echo gpus-listed").next())
            .unwrap()
            .replace("\\\\", "\\")
            .replace("\\\"", "\"");
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!(
                "printf '%s' \"$LISTING\" | {script}; echo gpus-listed"
            ))
            .env("LISTING", NVIDIA_SMI_L)
            .output()
            .unwrap();
        let report = parse(&out.stdout, Duration::ZERO);
        assert_eq!(
            report.gpus,
            Some(3),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert_eq!(parse(b"gpus-listed\n", Duration::ZERO).gpus, Some(0));
        assert_eq!(parse(b"cores=2\n", Duration::ZERO).gpus, None);
    }
}
