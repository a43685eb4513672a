//! GNU parallel sshlogins (`-w LIST`, `--slf FILE`): `[@GROUPS/][N/][user@]host[:port]`.
//!
//! This module owns the text of a host list given on the command line, without any I/O:
//!
//! - `N/` is the number of slots, `@gpu+big/` puts the hosts in groups (they become labels,
//!   so `--constraint gpu` selects them), `:` is the local machine (as in GNU parallel);
//! - the host is a nodeset (`node[01-16]`), so a comma inside brackets does not separate
//!   two sshlogins; an IPv6 address is written `[::1]:2222`, or bare without a port;
//! - GNU parallel's command form `ssh -p 2222 -l alice host` is understood for `-p` and
//!   `-l`; any other command or option is refused, since dts runs no `ssh` program;
//! - a list separates sshlogins with commas or newlines; a file has one per line, with blank
//!   lines and `#` comments.
//!
//! Errors carry the byte offset of the offending text so callers can point at the column.

/// One host of an sshlogin, after nodeset expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// The host name as written (one name of the nodeset), or `localhost` for `:`.
    pub host: String,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub slots: Option<u32>,
    /// Host groups (`@a+b/`), used as labels.
    pub groups: Vec<String>,
    /// `:`: the local machine, without ssh.
    pub local: bool,
    /// Byte offset of the sshlogin in the text it came from.
    pub at: usize,
}

/// The name the local machine gets when an sshlogin is `:`.
pub const LOCAL_NAME: &str = "localhost";

/// An sshlogin that does not parse; `offset` is the byte offset in the text given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct LoginError {
    pub offset: usize,
    pub message: String,
}

fn error(offset: usize, message: impl Into<String>) -> LoginError {
    LoginError {
        offset,
        message: message.into(),
    }
}

/// Parses a `-w` list: sshlogins separated by commas (outside nodeset brackets) or newlines.
pub fn parse_list(text: &str) -> Result<Vec<Login>, LoginError> {
    if text.trim().is_empty() {
        return Err(error(
            0,
            "empty host list: expected sshlogins such as `8/alice@node[01-16],gpu1`",
        ));
    }
    let mut logins = Vec::new();
    for (offset, entry) in split_entries(text)? {
        if entry.trim().is_empty() {
            return Err(error(offset, "empty sshlogin between separators"));
        }
        logins.extend(parse_entry(entry, offset)?);
    }
    Ok(logins)
}

/// Parses an sshlogin file: one sshlogin per line; blank lines and lines starting with `#`
/// are skipped. Offsets (in logins and errors) are in the whole text.
pub fn parse_file(text: &str) -> Result<Vec<Login>, LoginError> {
    let mut logins = Vec::new();
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let line_start = start;
        start += line.len();
        let content = line.trim();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        logins.extend(parse_entry(line.trim_end(), line_start)?);
    }
    Ok(logins)
}

/// Splits at commas outside brackets and at newlines; each entry with its byte offset.
fn split_entries(text: &str) -> Result<Vec<(usize, &str)>, LoginError> {
    let mut entries = Vec::new();
    let mut open_bracket: Option<usize> = None;
    let mut start = 0;
    for (i, byte) in text.bytes().enumerate() {
        match byte {
            b'[' if open_bracket.is_none() => open_bracket = Some(i),
            b']' => open_bracket = None,
            b',' | b'\n' if open_bracket.is_none() => {
                entries.push((start, &text[start..i]));
                start = i + 1;
            }
            b'\n' => return Err(error(i, "newline inside brackets")),
            _ => {}
        }
    }
    if let Some(open) = open_bracket {
        return Err(error(open, "`[` is never closed: expected `]`"));
    }
    entries.push((start, &text[start..]));
    // A trailing newline (as from `$(cat file)`) ends the list rather than adding an entry.
    if entries.len() > 1
        && entries.last().is_some_and(|(_, e)| e.is_empty())
        && text.ends_with('\n')
    {
        entries.pop();
    }
    Ok(entries)
}

/// One sshlogin (`entry`, which starts at byte `base` of the text) into its hosts.
fn parse_entry(entry: &str, base: usize) -> Result<Vec<Login>, LoginError> {
    let leading = entry.len() - entry.trim_start().len();
    let entry = entry.trim();
    let base = base + leading;
    let (groups, rest, at) = groups(entry, base)?;
    let (slots, rest, at) = slots(rest, at)?;
    if rest == ":" {
        return Ok(vec![Login {
            host: LOCAL_NAME.into(),
            user: None,
            port: None,
            slots,
            groups,
            local: true,
            at: base,
        }]);
    }
    let target = target(rest, at)?;
    let hosts = match &target.ipv6 {
        Some(address) => vec![address.clone()],
        None => crate::nodeset::expand(target.host).map_err(|err| {
            error(
                target.host_at + err.offset,
                format!("invalid host \"{}\": {err}", target.host),
            )
        })?,
    };
    Ok(hosts
        .into_iter()
        .map(|host| Login {
            host,
            user: target.user.clone(),
            port: target.port,
            slots,
            groups: groups.clone(),
            local: false,
            at: base,
        })
        .collect())
}

/// `@a+b/` at the start: the group names, the rest and its offset.
fn groups(entry: &str, base: usize) -> Result<(Vec<String>, &str, usize), LoginError> {
    let Some(body) = entry.strip_prefix('@') else {
        return Ok((Vec::new(), entry, base));
    };
    let Some(slash) = body.find('/') else {
        return Err(error(
            base,
            "`@GROUP` alone selects a host group, which dts does not support: write \
             `@GROUP/host` to put a host in a group",
        ));
    };
    let mut names = Vec::new();
    let mut offset = base + 1;
    for name in body[..slash].split('+') {
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(error(
                offset,
                format!("invalid host group \"{name}\": expected a word such as `gpu`"),
            ));
        }
        names.push(name.to_string());
        offset += name.len() + 1;
    }
    Ok((names, &body[slash + 1..], base + 2 + slash))
}

/// `N/` at the start: the slots, the rest and its offset.
fn slots(rest: &str, at: usize) -> Result<(Option<u32>, &str, usize), LoginError> {
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || rest.as_bytes().get(digits) != Some(&b'/') {
        return Ok((None, rest, at));
    }
    let slots: u32 = rest[..digits]
        .parse()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| {
            error(
                at,
                format!(
                    "slots must be between 1 and {}, got {}",
                    u32::MAX,
                    &rest[..digits]
                ),
            )
        })?;
    Ok((Some(slots), &rest[digits + 1..], at + digits + 1))
}

/// The `[user@]host[:port]` part, or the `ssh -p PORT -l USER host` form.
struct Target<'a> {
    user: Option<String>,
    host: &'a str,
    host_at: usize,
    port: Option<u16>,
    /// A literal IPv6 address (not a nodeset).
    ipv6: Option<String>,
}

fn target(text: &str, at: usize) -> Result<Target<'_>, LoginError> {
    if text.is_empty() {
        return Err(error(at, "missing host: expected [user@]host[:port]"));
    }
    if text.contains(char::is_whitespace) {
        return command_form(text, at);
    }
    let (user, host, host_at) = match text.rfind('@') {
        Some(i) => (Some(user(&text[..i], at)?), &text[i + 1..], at + i + 1),
        None => (None, text, at),
    };
    let mut target = host_port(host, host_at)?;
    target.user = user;
    Ok(target)
}

fn user(text: &str, at: usize) -> Result<String, LoginError> {
    if text.is_empty() {
        return Err(error(at, "empty user before `@`"));
    }
    if text.contains(':') {
        return Err(error(
            at,
            "a password in an sshlogin (`user:password@host`) is not supported: dts never \
             sends passwords; use a key or ssh-agent",
        ));
    }
    Ok(text.to_string())
}

/// `host`, `host:port`, `[v6]:port` or a bare IPv6 address.
fn host_port(text: &str, at: usize) -> Result<Target<'_>, LoginError> {
    let target = |host, port, ipv6| Target {
        user: None,
        host,
        host_at: at,
        port,
        ipv6,
    };
    if text.is_empty() {
        return Err(error(at, "missing host: expected [user@]host[:port]"));
    }
    if let Some(close) = text.find(']').filter(|_| text.starts_with('[')) {
        let inside = &text[1..close];
        if inside.contains(':') {
            let port = match &text[close + 1..] {
                "" => None,
                rest => match rest.strip_prefix(':') {
                    Some(port) => Some(parse_port(port, at + close + 2)?),
                    None => return Err(error(at + close + 1, "expected `:PORT` after `]`")),
                },
            };
            return Ok(target(inside, port, Some(inside.to_string())));
        }
    }
    if text.matches(':').count() > 1 && !text.contains('[') {
        return Ok(target(text, None, Some(text.to_string())));
    }
    // A port is a colon after the last bracket group: `node[1-2]:22`.
    let after_groups = text.rfind(']').map_or(0, |i| i + 1);
    let (host, port) = match text[after_groups..].rfind(':').map(|i| after_groups + i) {
        Some(0) => return Err(error(at, "missing host before `:PORT`")),
        Some(colon) => (
            &text[..colon],
            Some(parse_port(&text[colon + 1..], at + colon + 1)?),
        ),
        None => (text, None),
    };
    if let Some(slash) = host.find('/') {
        return Err(error(
            at + slash,
            format!("invalid host \"{host}\": expected [N/][user@]host[:port]"),
        ));
    }
    Ok(target(host, port, None))
}

fn parse_port(text: &str, at: usize) -> Result<u16, LoginError> {
    text.parse::<u16>()
        .ok()
        .filter(|&port| port != 0)
        .ok_or_else(|| {
            error(
                at,
                format!("invalid port \"{text}\": expected a number between 1 and 65535"),
            )
        })
}

/// GNU parallel's `ssh -p 2222 -l alice host`: only `ssh` with `-p` and `-l` is understood.
fn command_form(text: &str, at: usize) -> Result<Target<'_>, LoginError> {
    let words = words(text, at);
    let (program, program_at) = words[0];
    if program != "ssh" {
        return Err(error(
            program_at,
            format!(
                "unsupported ssh command \"{program}\": dts connects by itself; write \
                 [user@]host[:port] (or `ssh -p PORT -l USER host`)"
            ),
        ));
    }
    let (mut user, mut port) = (None, None);
    let mut rest = &words[1..];
    while let [(option, option_at), tail @ ..] = rest {
        if !option.starts_with('-') {
            break;
        }
        let (flag, attached) = option.split_at(2.min(option.len()));
        let (value, value_at, tail) = match (attached, tail) {
            ("", [(value, value_at), tail @ ..]) => (*value, *value_at, tail),
            ("", []) => return Err(error(*option_at, format!("`{option}` needs a value"))),
            (value, _) => (value, option_at + 2, tail),
        };
        match flag {
            "-p" => port = Some(parse_port(value, value_at)?),
            "-l" => user = Some(self::user(value, value_at)?),
            _ => {
                return Err(error(
                    *option_at,
                    format!(
                        "unsupported ssh option `{option}`: dts understands only -p and -l here"
                    ),
                ));
            }
        }
        rest = tail;
    }
    match rest {
        [(host, host_at)] => {
            let mut target = target(host, *host_at)?;
            target.user = target.user.or(user);
            target.port = target.port.or(port);
            Ok(target)
        }
        [] => Err(error(at + text.len(), "missing host after the ssh options")),
        [_, (extra, extra_at), ..] => Err(error(
            *extra_at,
            format!("unexpected \"{extra}\": the host must come last"),
        )),
    }
}

/// Whitespace-separated words with their offsets.
fn words(text: &str, at: usize) -> Vec<(&str, usize)> {
    let mut words = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices().chain([(text.len(), ' ')]) {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                words.push((&text[s..i], at + s));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn login(host: &str) -> Login {
        Login {
            host: host.into(),
            user: None,
            port: None,
            slots: None,
            groups: vec![],
            local: false,
            at: 0,
        }
    }

    fn one(text: &str) -> Login {
        let mut logins = parse_list(text).unwrap_or_else(|err| panic!("{text}: {err}"));
        assert_eq!(logins.len(), 1, "{text}");
        logins.remove(0)
    }

    fn err(text: &str) -> (usize, String) {
        let err = parse_list(text).unwrap_err();
        (err.offset, err.message)
    }

    #[test]
    fn slots_user_host_and_port() {
        assert_eq!(one("node1"), login("node1"));
        assert_eq!(
            one("8/alice@node1:2222"),
            Login {
                user: Some("alice".into()),
                port: Some(2222),
                slots: Some(8),
                ..login("node1")
            }
        );
        assert_eq!(one("bob@n").user.as_deref(), Some("bob"));
        assert_eq!(one("n:22").port, Some(22));
    }

    #[test]
    fn nodeset_commas_do_not_separate_sshlogins() {
        let logins = parse_list("8/alice@node[01-03,7],4/gpu1").unwrap();
        let hosts: Vec<_> = logins.iter().map(|l| l.host.as_str()).collect();
        assert_eq!(hosts, ["node01", "node02", "node03", "node7", "gpu1"]);
        assert!(
            logins[..4]
                .iter()
                .all(|l| l.slots == Some(8) && l.user.as_deref() == Some("alice"))
        );
        assert_eq!(logins[4].slots, Some(4));
        assert_eq!(logins[4].user, None);
    }

    #[test]
    fn newlines_separate_too_and_a_trailing_one_is_ignored() {
        let logins = parse_list("a,b\nc\n").unwrap();
        assert_eq!(logins.len(), 3);
        assert_eq!(logins[2].host, "c");
    }

    #[test]
    fn colon_is_the_local_machine() {
        let local = one(":");
        assert!(local.local);
        assert_eq!(local.host, LOCAL_NAME);
        assert_eq!(one("16/:").slots, Some(16));
    }

    #[test]
    fn groups_become_labels() {
        let entry = one("@gpu+big/4/alice@n1");
        assert_eq!(entry.groups, ["gpu", "big"]);
        assert_eq!(entry.slots, Some(4));
        assert_eq!(err("@gpu"), (0, err("@gpu").1));
        assert!(err("@gpu").1.contains("host group"));
        assert_eq!(err("@a++b/n").0, 3);
    }

    #[test]
    fn ipv6_addresses() {
        assert_eq!(one("[::1]:2222").host, "::1");
        assert_eq!(one("[::1]:2222").port, Some(2222));
        assert_eq!(one("alice@[fe80::1]").host, "fe80::1");
        assert_eq!(one("::1").host, "::1");
        assert_eq!(one("::1").port, None);
    }

    #[test]
    fn the_ssh_command_form_with_p_and_l() {
        let entry = one("4/ssh -p 2222 -l alice quadserver");
        assert_eq!(
            (entry.slots, entry.port, entry.user.as_deref(), &*entry.host),
            (Some(4), Some(2222), Some("alice"), "quadserver")
        );
        assert_eq!(one("ssh -p2200 h").port, Some(2200));
        assert_eq!(one("ssh -l x bob@h").user.as_deref(), Some("bob"));
        assert_eq!(err("myssh -p 2 h").0, 0);
        assert!(
            err("myssh -p 2 h")
                .1
                .starts_with("unsupported ssh command \"myssh\"")
        );
        assert_eq!(
            err("ssh -o X=y h"),
            (
                4,
                "unsupported ssh option `-o`: dts understands only -p and -l here".into()
            )
        );
        assert_eq!(err("ssh -p").0, 4);
        assert_eq!(err("ssh h extra").0, 6);
    }

    #[test]
    fn errors_point_at_the_column() {
        assert_eq!(err("a,,b").0, 2);
        assert_eq!(
            err("a,b:x"),
            (
                4,
                "invalid port \"x\": expected a number between 1 and 65535".into()
            )
        );
        assert_eq!(err("a,b:0").0, 4);
        assert_eq!(
            err("h,0/x").1,
            "slots must be between 1 and 4294967295, got 0"
        );
        assert_eq!(err("h,0/x").0, 2);
        assert_eq!(err("x,n[1-").0, 3);
        assert_eq!(err("x,n[3-1]").0, 4);
        assert!(err("u:pw@h").1.contains("password"));
        assert_eq!(err("@h").0, 0);
        assert_eq!(err("u@").0, 2);
        assert_eq!(err(":22").0, 0);
        assert!(err("").1.starts_with("empty host list"));
        assert_eq!(err("a/b").0, 1);
        assert_eq!(err("x,8/4/h").0, 5);
    }

    #[test]
    fn files_skip_comments_and_blank_lines_and_number_errors_by_line() {
        let text = "# the cluster\n\n8/alice@node[1-2]\n  4/gpu1  \n16/:\n";
        let logins = parse_file(text).unwrap();
        let hosts: Vec<_> = logins.iter().map(|l| l.host.as_str()).collect();
        assert_eq!(hosts, ["node1", "node2", "gpu1", "localhost"]);
        let err = parse_file("a\n# b\n  c:99999\n").unwrap_err();
        assert_eq!(err.offset, 6 + 4);
        assert_eq!(parse_file("a\n  b\n").unwrap()[1].at, 4);
    }

    fn name() -> impl Strategy<Value = String> {
        "[a-z][a-z0-9-]{0,8}"
    }

    proptest! {
        #[test]
        fn written_sshlogins_read_back(
            entries in proptest::collection::vec(
                (proptest::option::of(1u32..64), proptest::option::of(name()), name(),
                 proptest::option::of(1u16..)),
                1..6),
        ) {
            let text: Vec<String> = entries
                .iter()
                .map(|(slots, user, host, port)| {
                    let slots = slots.map(|n| format!("{n}/")).unwrap_or_default();
                    let user = user.as_ref().map(|u| format!("{u}@")).unwrap_or_default();
                    let port = port.map(|p| format!(":{p}")).unwrap_or_default();
                    format!("{slots}{user}{host}{port}")
                })
                .collect();
            let logins = parse_list(&text.join(",")).unwrap();
            prop_assert_eq!(logins.len(), entries.len());
            for (login, (slots, user, host, port)) in logins.iter().zip(&entries) {
                prop_assert_eq!(&login.host, host);
                prop_assert_eq!(login.slots, *slots);
                prop_assert_eq!(&login.user, user);
                prop_assert_eq!(login.port, *port);
            }
        }

        #[test]
        fn commas_inside_brackets_never_split_an_sshlogin(
            groups in proptest::collection::vec(
                (name(), proptest::collection::vec((0u32..20, 0u32..5), 1..4), 1u32..9),
                1..5),
        ) {
            // `8/node[1-3,7]`: each sshlogin's hosts are exactly its nodeset's names.
            let entries: Vec<(String, u32)> = groups
                .iter()
                .map(|(prefix, ranges, slots)| {
                    let body: Vec<String> = ranges
                        .iter()
                        .map(|(low, span)| format!("{low}-{}", low + span))
                        .collect();
                    (format!("{prefix}[{}]", body.join(",")), *slots)
                })
                .collect();
            let text: Vec<String> = entries.iter().map(|(host, slots)| format!("{slots}/{host}")).collect();
            let logins = parse_list(&text.join(",")).unwrap();
            let mut expected = Vec::new();
            for (host, slots) in &entries {
                for name in crate::nodeset::expand(host).unwrap() {
                    expected.push((name, *slots));
                }
            }
            let got: Vec<(String, u32)> = logins.into_iter().map(|l| (l.host, l.slots.unwrap())).collect();
            prop_assert_eq!(got, expected);
        }

        #[test]
        fn any_text_parses_or_fails_inside_it(text in "[a-z0-9@:/,\\[\\]\\- #+]{0,30}") {
            if let Err(err) = parse_list(&text) {
                prop_assert!(err.offset <= text.len());
            }
        }
    }
}
