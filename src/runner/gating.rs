//! The note a run writes when `--load` / `--memfree` shut every host: the run waits for a
//! periodic probe to find one open (it does not fail), and says once per wait which hosts
//! are gated and why, folded by cause.

use super::hosts::{HostRt, HostState};
use crate::fold;

/// Whether the current wait has been named.
#[derive(Debug, Default)]
pub struct GateWatch {
    said: bool,
}

impl GateWatch {
    /// The note to write now, if every host still in the run is up and gated while tasks
    /// wait and this wait has not been named yet; `every` is the probe interval.
    pub fn note(&mut self, hosts: &[HostRt], queued: bool, every: &str) -> Option<String> {
        let mut live = hosts
            .iter()
            .filter(|h| !matches!(h.state, HostState::Gone(_) | HostState::Quarantined { .. }))
            .peekable();
        live.peek()?;
        let causes: Option<Vec<(&str, String)>> = live
            .map(|h| {
                let gated = (h.state == HostState::Up).then(|| h.gated()).flatten()?;
                Some((h.spec.name.as_str(), gated.cause()))
            })
            .collect();
        let Some(causes) = causes.filter(|_| queued) else {
            self.said = false;
            return None;
        };
        if std::mem::replace(&mut self.said, true) {
            return None;
        }
        let folded = fold::by_cause(causes.iter().map(|(h, c)| (*h, c.as_str())))
            .into_iter()
            .map(|(hosts, cause)| format!("{hosts} ({cause})"))
            .collect::<Vec<_>>()
            .join(", ");
        Some(format!(
            "every host is gated, so no task starts until a probe (every {every}) finds one open: {folded}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Host;
    use crate::placement::gate::Gates;
    use crate::probe::ProbeReport;
    use std::sync::Arc;
    use std::time::Duration;

    fn host(name: &str, mem_kib: u64) -> HostRt {
        let spec: Host = serde_json::from_value(serde_json::json!({
            "name": name, "address": "127.0.0.1", "port": 22, "user": "u",
            "identities": [], "known_hosts": [], "host_key_policy": "strict",
            "slots": 2, "weight": 1.0, "labels": [], "transport": "ssh",
            "connect_timeout": { "secs": 5, "nanos": 0 },
        }))
        .expect("a host");
        let mut rt = HostRt::new(Arc::new(spec), None);
        rt.gates = Gates {
            load: None,
            memfree: Some(1 << 30),
        };
        rt.state = HostState::Up;
        rt.probed(ProbeReport {
            shell: "/bin/sh".into(),
            os: "Linux".into(),
            cores: Some(2),
            load: Some([0.0; 3]),
            mem_total_kib: Some(mem_kib * 2),
            mem_available_kib: Some(mem_kib),
            latency: Duration::ZERO,
            gpus: None,
            perl: None,
        });
        rt
    }

    #[test]
    fn the_view_of_a_host_under_its_memfree_is_gated() {
        assert!(!host("h1", 2 << 20).view().gated);
        assert!(host("h1", (1 << 20) - 1).view().gated);
    }

    #[test]
    fn every_host_gated_is_said_once_per_wait_folded() {
        let mut hosts = vec![host("u1", 1000), host("u2", 2000)];
        let mut watch = GateWatch::default();
        assert_eq!(
            watch.note(&hosts, true, "30s").as_deref(),
            Some(
                "every host is gated, so no task starts until a probe (every 30s) finds one open: \
                 u[1-2] (less than --memfree 1.0G available)"
            )
        );
        assert_eq!(watch.note(&hosts, true, "30s"), None);
        hosts[1] = host("u2", 2 << 20);
        assert_eq!(watch.note(&hosts, true, "30s"), None);
        hosts[1] = host("u2", 2000);
        assert!(watch.note(&hosts, true, "30s").is_some());
    }

    #[test]
    fn nothing_is_said_when_no_task_waits() {
        let hosts = vec![host("u1", 1000)];
        assert_eq!(GateWatch::default().note(&hosts, false, "30s"), None);
    }
}
