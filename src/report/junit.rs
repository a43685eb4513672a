//! `--junit FILE`: the run as a JUnit XML test report, one test case per task, so a CI
//! system shows a sweep like a test run. Pure: the caller supplies each failed task's
//! stderr tail.

use std::fmt::Write;

use crate::store::reader::{RunDetail, TaskRow};

/// Escapes text for XML attributes and content; drops characters XML 1.0 cannot hold.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

pub fn render(detail: &RunDetail, stderr_tail: impl Fn(&TaskRow) -> Option<String>) -> String {
    let tasks = &detail.tasks;
    let failures = tasks
        .iter()
        .filter(|t| matches!(t.state.as_str(), "failed" | "timed-out"))
        .count();
    let skipped = tasks
        .iter()
        .filter(|t| !matches!(t.state.as_str(), "succeeded" | "failed" | "timed-out"))
        .count();
    let time: f64 = tasks.iter().filter_map(|t| t.run_s).sum();
    let name = escape(&detail.run.name);
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"dts\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{time:.3}\">",
        tasks.len()
    );
    let _ = writeln!(
        xml,
        "  <testsuite name=\"{name} ({})\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{time:.3}\">",
        escape(&detail.run.id),
        tasks.len()
    );
    for task in tasks {
        xml.push_str(&case(task, &name, &stderr_tail));
    }
    xml.push_str("  </testsuite>\n</testsuites>\n");
    xml
}

fn case(task: &TaskRow, suite: &str, stderr_tail: &impl Fn(&TaskRow) -> Option<String>) -> String {
    let mut xml = format!(
        "    <testcase classname=\"{suite}\" name=\"task {}: {}\" time=\"{:.3}\"",
        task.index,
        escape(&String::from_utf8_lossy(&task.item)),
        task.run_s.unwrap_or(0.0)
    );
    let host = task.host.as_deref().map(escape).unwrap_or_default();
    let body = match task.state.as_str() {
        "succeeded" => None,
        "failed" | "timed-out" => {
            let message = match (&task.status, task.state.as_str()) {
                (_, "timed-out") => "timed out".to_string(),
                (Some(status), _) => status.to_string(),
                (None, _) => task.state.clone(),
            };
            let tail = stderr_tail(task).unwrap_or_default();
            Some(format!(
                "      <failure message=\"{} on {host} (attempt {})\">{}</failure>\n",
                escape(&message),
                task.attempts,
                escape(&tail)
            ))
        }
        other => Some(format!(
            "      <skipped message=\"{}\"/>\n",
            escape(task.reason.as_deref().unwrap_or(other))
        )),
    };
    let _ = write!(
        xml,
        ">\n      <properties><property name=\"host\" value=\"{host}\"/><property name=\"attempts\" value=\"{}\"/></properties>\n",
        task.attempts
    );
    if let Some(body) = body {
        xml.push_str(&body);
    }
    xml.push_str("    </testcase>\n");
    xml
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(escape("a<b>&\"c'\u{1}\n"), "a&lt;b&gt;&amp;&quot;c&apos;\n");
    }
}
