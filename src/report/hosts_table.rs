//! The `dts hosts` table: one row per host with its probe results.

use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

/// One host's probe, ready to print or serialise.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HostRow {
    pub name: String,
    pub address: String,
    /// `ok` or the error.
    pub status: String,
    pub latency_ms: Option<f64>,
    pub cores: Option<u32>,
    pub load1: Option<f64>,
    pub mem_available_mib: Option<u64>,
    pub mem_total_mib: Option<u64>,
    pub slots: Option<u32>,
    /// The inventory's `gpus`, else what `nvidia-smi -L` listed; `None`: neither says.
    pub gpus: Option<u32>,
    /// How tasks run there when it is not the default: `warm`, or why not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution: Option<String>,
}

/// Renders the rows as a table.
pub fn render(rows: &[HostRow]) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED);
    table.set_header([
        "host",
        "address",
        "status",
        "latency ms",
        "cores",
        "load1",
        "mem avail",
        "slots",
        "gpus",
    ]);
    for row in rows {
        table.add_row([
            row.name.clone(),
            row.address.clone(),
            match &row.execution {
                Some(execution) => format!("{} ({execution})", row.status),
                None => row.status.clone(),
            },
            opt(row.latency_ms.map(|l| format!("{l:.1}"))),
            opt(row.cores.map(|c| c.to_string())),
            opt(row.load1.map(|l| format!("{l:.2}"))),
            opt(row.mem_available_mib.map(format_mib)),
            opt(row.slots.map(|s| s.to_string())),
            opt(row.gpus.map(|g| g.to_string())),
        ]);
    }
    table.to_string()
}

fn opt(value: Option<String>) -> String {
    value.unwrap_or_else(|| "-".into())
}

fn format_mib(mib: u64) -> String {
    if mib >= 10 * 1024 {
        format!("{:.0} GiB", mib as f64 / 1024.0)
    } else if mib >= 1024 {
        format!("{:.1} GiB", mib as f64 / 1024.0)
    } else {
        format!("{mib} MiB")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_table() {
        let ok = HostRow {
            name: "node01".into(),
            address: "10.0.0.1".into(),
            status: "ok".into(),
            latency_ms: Some(3.25),
            cores: Some(16),
            load1: Some(0.5),
            mem_available_mib: Some(60_000),
            mem_total_mib: Some(64_000),
            slots: Some(16),
            gpus: Some(4),
            execution: None,
        };
        let down = HostRow {
            name: "node02".into(),
            address: "10.0.0.2:2222".into(),
            status: "error: connect to 10.0.0.2:2222: Connection refused (os error 111)".into(),
            latency_ms: None,
            cores: None,
            load1: None,
            mem_available_mib: None,
            mem_total_mib: None,
            slots: Some(8),
            gpus: None,
            execution: None,
        };
        insta::assert_snapshot!(render(&[ok, down]));
    }
}
