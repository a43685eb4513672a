//! Folding per-host messages by cause, as `dshbak -c` does: hosts that report the same
//! thing become one line that names them as a nodeset (`u[1-2000]: connect to port 22: ...`),
//! so ten thousand unreachable hosts make a line, not ten thousand. Pure.
//!
//! A cause that embeds the host's own address (`connect to 10.0.0.1:22: ...`) is compared
//! without it; the fold names the hosts. A host alone in its group keeps its message whole.

use std::borrow::Cow;
use std::collections::HashMap;

/// `message` with the host-specific target taken out: `connect to 10.0.0.1:22: refused`
/// becomes `connect to port 22: refused`, `cannot resolve n1.example: ...` becomes
/// `cannot resolve the address: ...`. Other text is left as it is.
pub fn host_independent(message: &str) -> Cow<'_, str> {
    let mut text = Cow::Borrowed(message);
    if let Some(rewritten) = rewrite_target(&text, "connect to ", |target| {
        target
            .rsplit_once(':')
            .map(|(_, port)| format!("port {port}"))
    }) {
        text = Cow::Owned(rewritten);
    }
    if let Some(rewritten) =
        rewrite_target(&text, "cannot resolve ", |_| Some("the address".into()))
    {
        text = Cow::Owned(rewritten);
    }
    text
}

/// Replaces the target between `prefix` and the next `": "` with what `replace` makes of
/// it; `None` when the message has no such target.
fn rewrite_target(
    message: &str,
    prefix: &str,
    replace: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    let start = message.find(prefix)? + prefix.len();
    let len = message[start..].find(": ")?;
    let target = &message[start..start + len];
    if target.contains(' ') {
        return None;
    }
    let replacement = replace(target)?;
    Some(format!(
        "{}{replacement}{}",
        &message[..start],
        &message[start + len..]
    ))
}

/// Groups `(host, message)` pairs by host-independent message, in order of first
/// appearance: each group is `(nodeset of its hosts, message)`. A host alone in its group
/// keeps its own message, address and all.
pub fn by_cause<'a>(
    entries: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<(String, String)> {
    let mut groups: Vec<(String, Vec<&str>, &str)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (host, message) in entries {
        let cause = host_independent(message).into_owned();
        match index.get(&cause) {
            Some(&at) => groups[at].1.push(host),
            None => {
                index.insert(cause.clone(), groups.len());
                groups.push((cause, vec![host], message));
            }
        }
    }
    groups
        .into_iter()
        .map(|(cause, hosts, first)| {
            let message = if hosts.len() == 1 {
                first.to_string()
            } else {
                cause
            };
            (crate::nodeset::fold(&hosts), message)
        })
        .collect()
}

/// Host notes gathered over a short span and written out folded: `(host, rest)` where the
/// line reads `host` followed by `rest` (`": refused; retrying in 1s"`).
#[derive(Debug, Default)]
pub struct Notes {
    pending: Vec<(String, String)>,
}

impl Notes {
    pub fn push(&mut self, host: &str, rest: String) {
        self.pending.push((host.to_string(), rest));
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// The gathered notes as folded lines (without newlines), and empties the buffer.
    pub fn take_lines(&mut self) -> Vec<String> {
        let pending = std::mem::take(&mut self.pending);
        by_cause(pending.iter().map(|(h, r)| (h.as_str(), r.as_str())))
            .into_iter()
            .map(|(hosts, rest)| format!("{hosts}{rest}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_leaves_a_connect_error() {
        assert_eq!(
            host_independent("connect to 10.0.0.1:22: Connection refused (os error 111)"),
            "connect to port 22: Connection refused (os error 111)"
        );
        assert_eq!(
            host_independent(
                "quarantined after 3 failures in 1m; last: connect to ::1:2222: timed out after 5s"
            ),
            "quarantined after 3 failures in 1m; last: connect to port 2222: timed out after 5s"
        );
        assert_eq!(
            host_independent("cannot resolve n1.example: failed to lookup address information"),
            "cannot resolve the address: failed to lookup address information"
        );
        assert_eq!(
            host_independent("authentication as bob refused (tried: ssh-agent)"),
            "authentication as bob refused (tried: ssh-agent)"
        );
    }

    #[test]
    fn hosts_with_one_cause_fold_into_a_nodeset() {
        let refused = |a: u32| format!("connect to 10.0.0.{a}:22: Connection refused");
        let messages: Vec<(String, String)> = (1..=100)
            .map(|i| (format!("n{i}"), refused(i)))
            .chain([("gpu1".to_string(), "authentication refused".to_string())])
            .collect();
        let groups = by_cause(messages.iter().map(|(h, m)| (h.as_str(), m.as_str())));
        assert_eq!(
            groups,
            vec![
                (
                    "n[1-100]".to_string(),
                    "connect to port 22: Connection refused".to_string()
                ),
                ("gpu1".to_string(), "authentication refused".to_string()),
            ]
        );
    }

    #[test]
    fn a_host_alone_keeps_its_address() {
        let groups = by_cause([
            ("a", "connect to 10.0.0.1:22: Connection refused"),
            ("b", "connect to 10.0.0.2:23: Connection refused"),
        ]);
        assert_eq!(groups[0].1, "connect to 10.0.0.1:22: Connection refused");
        assert_eq!(groups[1].1, "connect to 10.0.0.2:23: Connection refused");
    }

    #[test]
    fn notes_fold_by_what_follows_the_host() {
        let mut notes = Notes::default();
        for i in 1..=3 {
            notes.push(
                &format!("h{i}"),
                format!(": connect to 127.0.0.{i}:22: refused; retrying in 1s"),
            );
        }
        notes.push("h9", " answers again: it rejoins the run".into());
        assert_eq!(
            notes.take_lines(),
            [
                "h[1-3]: connect to port 22: refused; retrying in 1s",
                "h9 answers again: it rejoins the run"
            ]
        );
        assert!(notes.is_empty());
    }
}
