//! OpenSSH `known_hosts` files: parsing, host matching and the key verdict.
//!
//! Written here rather than left to libssh2 because libssh2 (ssh2 0.9) ignores `@revoked`
//! and, for a non-22 port, also accepts a plain `host` entry where OpenSSH requires
//! `[host]:port`. This module follows OpenSSH: hashed entries (`|1|salt|hash`), comma
//! separated patterns with `*`, `?` and `!` negation, `@revoked` (refused even when another
//! line matches), `@cert-authority` (skipped: dts does not use host certificates), comments
//! and blank lines. Malformed lines are skipped, as OpenSSH does.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};

/// Where a known_hosts line came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRef {
    pub path: PathBuf,
    pub line: usize,
}

impl std::fmt::Display for LineRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.path.display(), self.line)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Hosts {
    /// `|1|base64(salt)|base64(hmac-sha1(salt, host))`.
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
    /// Comma-separated patterns; `(negated, pattern)`.
    Patterns(Vec<(bool, String)>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    marker: Marker,
    hosts: Hosts,
    key_type: String,
    key: Vec<u8>,
    origin: LineRef,
}

/// The entries of one or more known_hosts files.
#[derive(Debug, Clone, Default)]
pub struct KnownHosts {
    entries: Vec<Entry>,
}

/// What known_hosts says about a key a host offered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A line lists this key for this host.
    Match,
    /// An `@revoked` line lists this key.
    Revoked(LineRef),
    /// Lines list a different key of the same type for this host: the key changed.
    Changed(LineRef),
    /// No line lists a key of this type for this host.
    Unknown,
}

impl KnownHosts {
    /// Reads every file in `paths`; missing files count as empty.
    pub fn load(paths: &[PathBuf]) -> std::io::Result<KnownHosts> {
        let mut known = KnownHosts::default();
        for path in paths {
            match std::fs::read(path) {
                Ok(bytes) => known.add(path, &String::from_utf8_lossy(&bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(known)
    }

    /// Adds the lines of `text`, read from `path`.
    pub fn add(&mut self, path: &Path, text: &str) {
        for (number, line) in text.lines().enumerate() {
            let origin = LineRef {
                path: path.to_path_buf(),
                line: number + 1,
            };
            if let Some(entry) = parse_line(line, origin) {
                self.entries.push(entry);
            }
        }
    }

    /// Judges `key` (the SSH wire blob) offered by `host` on `port`.
    pub fn check(&self, host: &str, port: u16, key: &[u8]) -> Verdict {
        let name = host_token(host, port);
        let key_type = blob_key_type(key).unwrap_or_default();
        let matching = || self.entries.iter().filter(|e| e.matches_host(&name));
        if let Some(e) = matching().find(|e| e.marker == Marker::Revoked && e.key == key) {
            return Verdict::Revoked(e.origin.clone());
        }
        let usable = || matching().filter(|e| e.marker == Marker::None);
        if usable().any(|e| e.key == key) {
            return Verdict::Match;
        }
        match usable().find(|e| e.key_type == key_type) {
            Some(e) => Verdict::Changed(e.origin.clone()),
            None => Verdict::Unknown,
        }
    }

    /// Key types known for `host` on `port`, in file order, without duplicates.
    pub fn known_types(&self, host: &str, port: u16) -> Vec<String> {
        let name = host_token(host, port);
        let mut types: Vec<String> = Vec::new();
        for e in &self.entries {
            if e.marker == Marker::None && e.matches_host(&name) && !types.contains(&e.key_type) {
                types.push(e.key_type.clone());
            }
        }
        types
    }
}

impl Entry {
    fn matches_host(&self, name: &str) -> bool {
        match &self.hosts {
            Hosts::Hashed { salt, hash } => hmac_sha1(salt, name.as_bytes()) == *hash,
            Hosts::Patterns(patterns) => {
                let mut matched = false;
                for (negated, pattern) in patterns {
                    if wildcard_match(pattern, name) {
                        if *negated {
                            return false;
                        }
                        matched = true;
                    }
                }
                matched
            }
        }
    }
}

fn parse_line(line: &str, origin: LineRef) -> Option<Entry> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let mut fields = line.split_whitespace();
    let mut first = fields.next()?;
    let marker = match first {
        "@revoked" => Marker::Revoked,
        "@cert-authority" => Marker::CertAuthority,
        m if m.starts_with('@') => return None,
        _ => Marker::None,
    };
    if marker != Marker::None {
        first = fields.next()?;
    }
    let hosts = parse_hosts(first)?;
    let key_type = fields.next()?.to_string();
    let key = STANDARD.decode(fields.next()?).ok()?;
    if blob_key_type(&key)? != key_type && !key_type.starts_with("sk-") {
        return None;
    }
    Some(Entry {
        marker,
        hosts,
        key_type,
        key,
        origin,
    })
}

fn parse_hosts(field: &str) -> Option<Hosts> {
    if let Some(rest) = field.strip_prefix("|1|") {
        let (salt, hash) = rest.split_once('|')?;
        return Some(Hosts::Hashed {
            salt: STANDARD.decode(salt).ok()?,
            hash: STANDARD.decode(hash).ok()?,
        });
    }
    let patterns = field
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| match p.strip_prefix('!') {
            Some(rest) => (true, rest.to_ascii_lowercase()),
            None => (false, p.to_ascii_lowercase()),
        })
        .collect();
    Some(Hosts::Patterns(patterns))
}

/// The name OpenSSH looks up: `host` on port 22, `[host]:port` otherwise.
pub fn host_token(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if port == 22 {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

/// `*` and `?` glob match, as OpenSSH's `match_pattern`.
fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

fn hmac_sha1(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha1>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// The key type named at the start of an SSH key blob (`ssh-ed25519`, `ssh-rsa`, ...).
pub fn blob_key_type(blob: &[u8]) -> Option<String> {
    let len = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    let name = blob.get(4..4 + len)?;
    String::from_utf8(name.to_vec()).ok()
}

/// `SHA256:...`, as `ssh-keygen -l` prints it.
pub fn fingerprint(blob: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(blob)))
}

/// The line `accept-new` appends for a newly seen key.
pub fn entry_line(host: &str, port: u16, blob: &[u8]) -> String {
    let key_type = blob_key_type(blob).unwrap_or_else(|| "unknown".into());
    format!(
        "{} {key_type} {}\n",
        host_token(host, port),
        STANDARD.encode(blob)
    )
}

/// Appends `line` to `path`, creating the file (0600) and its directory (0700) if needed.
/// Callers serialise appends within the process; `O_APPEND` keeps lines whole across processes.
pub fn append(path: &Path, line: &str) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(line.as_bytes())
}

/// Host key algorithm names that verify a key of `key_type`, for libssh2's preference list.
pub fn algorithms_for(key_type: &str) -> &'static [&'static str] {
    match key_type {
        "ssh-ed25519" => &["ssh-ed25519"],
        "ecdsa-sha2-nistp256" => &["ecdsa-sha2-nistp256"],
        "ecdsa-sha2-nistp384" => &["ecdsa-sha2-nistp384"],
        "ecdsa-sha2-nistp521" => &["ecdsa-sha2-nistp521"],
        "ssh-rsa" => &["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
        "ssh-dss" => &["ssh-dss"],
        _ => &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A syntactically valid ed25519 blob with the given fill byte.
    fn ed25519(fill: u8) -> Vec<u8> {
        let mut blob = Vec::new();
        blob.extend_from_slice(&11u32.to_be_bytes());
        blob.extend_from_slice(b"ssh-ed25519");
        blob.extend_from_slice(&32u32.to_be_bytes());
        blob.extend_from_slice(&[fill; 32]);
        blob
    }

    fn rsa(fill: u8) -> Vec<u8> {
        let mut blob = Vec::new();
        blob.extend_from_slice(&7u32.to_be_bytes());
        blob.extend_from_slice(b"ssh-rsa");
        blob.extend_from_slice(&[fill; 20]);
        blob
    }

    fn line(hosts: &str, blob: &[u8]) -> String {
        let kind = blob_key_type(blob).unwrap();
        format!("{hosts} {kind} {}\n", STANDARD.encode(blob))
    }

    fn known(text: &str) -> KnownHosts {
        let mut k = KnownHosts::default();
        k.add(Path::new("kh"), text);
        k
    }

    #[test]
    fn plain_entry_matches_only_port_22() {
        let k = known(&line("node1,10.0.0.1", &ed25519(1)));
        assert_eq!(k.check("node1", 22, &ed25519(1)), Verdict::Match);
        assert_eq!(k.check("10.0.0.1", 22, &ed25519(1)), Verdict::Match);
        // OpenSSH requires [host]:port for other ports; libssh2 would accept this.
        assert_eq!(k.check("node1", 2222, &ed25519(1)), Verdict::Unknown);
    }

    #[test]
    fn bracketed_entry_matches_its_port() {
        let k = known(&line("[127.0.0.2]:2201", &ed25519(1)));
        assert_eq!(k.check("127.0.0.2", 2201, &ed25519(1)), Verdict::Match);
        assert_eq!(k.check("127.0.0.2", 2202, &ed25519(1)), Verdict::Unknown);
        assert_eq!(k.check("127.0.0.2", 22, &ed25519(1)), Verdict::Unknown);
    }

    #[test]
    fn changed_key_of_same_type_is_reported_with_its_line() {
        let k = known(&format!("# comment\n\n{}", line("node1", &ed25519(1))));
        let verdict = k.check("node1", 22, &ed25519(2));
        assert_eq!(
            verdict,
            Verdict::Changed(LineRef {
                path: "kh".into(),
                line: 3
            })
        );
    }

    #[test]
    fn key_of_another_type_is_unknown_not_changed() {
        let k = known(&line("node1", &rsa(1)));
        assert_eq!(k.check("node1", 22, &ed25519(1)), Verdict::Unknown);
        assert_eq!(k.known_types("node1", 22), vec!["ssh-rsa".to_string()]);
    }

    #[test]
    fn revoked_wins_over_a_matching_line() {
        let text = format!(
            "{}@revoked * ssh-ed25519 {}\n",
            line("node1", &ed25519(1)),
            STANDARD.encode(ed25519(1))
        );
        let k = known(&text);
        assert!(matches!(
            k.check("node1", 22, &ed25519(1)),
            Verdict::Revoked(_)
        ));
        assert_eq!(k.check("node2", 22, &ed25519(2)), Verdict::Unknown);
    }

    #[test]
    fn cert_authority_lines_are_not_host_keys() {
        let text = format!(
            "@cert-authority *.example ssh-ed25519 {}\n",
            STANDARD.encode(ed25519(1))
        );
        assert_eq!(
            known(&text).check("a.example", 22, &ed25519(1)),
            Verdict::Unknown
        );
    }

    #[test]
    fn hashed_entries_match() {
        let salt = [7u8; 20];
        let hash = hmac_sha1(&salt, b"[10.1.1.1]:2200");
        let hosts = format!("|1|{}|{}", STANDARD.encode(salt), STANDARD.encode(hash));
        let k = known(&line(&hosts, &ed25519(3)));
        assert_eq!(k.check("10.1.1.1", 2200, &ed25519(3)), Verdict::Match);
        assert_eq!(k.check("10.1.1.1", 22, &ed25519(3)), Verdict::Unknown);
    }

    /// A real key and the line `ssh-keygen -H` wrote for `[10.1.1.1]:2200`.
    const REAL_KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAICFxmptLkMoHk5P9LN4DOrTpLK3S+WJvPBD/PF8KaHcN";
    const REAL_HASHED_LINE: &str = "|1|JYgdhrTYAUbZcGx5BxuyxbB9qHw=|IJlxM3V5h/OO2saGgwBEFXPg9Qs= \
ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICFxmptLkMoHk5P9LN4DOrTpLK3S+WJvPBD/PF8KaHcN";

    #[test]
    fn hashed_entry_written_by_ssh_keygen_matches() {
        let k = known(REAL_HASHED_LINE);
        let key = STANDARD.decode(REAL_KEY).unwrap();
        assert_eq!(k.check("10.1.1.1", 2200, &key), Verdict::Match);
        assert_eq!(k.check("10.1.1.2", 2200, &key), Verdict::Unknown);
    }

    #[test]
    fn wildcards_and_negation() {
        let k = known(&line("*.lab,!bad.lab,node?", &ed25519(5)));
        assert_eq!(k.check("a.lab", 22, &ed25519(5)), Verdict::Match);
        assert_eq!(k.check("bad.lab", 22, &ed25519(5)), Verdict::Unknown);
        assert_eq!(k.check("node7", 22, &ed25519(5)), Verdict::Match);
        assert_eq!(k.check("node17", 22, &ed25519(5)), Verdict::Unknown);
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let text = format!(
            "garbage\nnode1 ssh-ed25519 !!!notbase64\n@weird node1 ssh-ed25519 AAAA\n{}",
            line("node1", &ed25519(6))
        );
        assert_eq!(known(&text).check("node1", 22, &ed25519(6)), Verdict::Match);
    }

    #[test]
    fn wildcard_match_basics() {
        assert!(wildcard_match("*", "anything"));
        assert!(wildcard_match("a*c", "abbbc"));
        assert!(wildcard_match("a?c", "abc"));
        assert!(!wildcard_match("a?c", "ac"));
        assert!(wildcard_match("[10.0.0.*]:22*", "[10.0.0.5]:2201"));
    }

    #[test]
    fn appended_line_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/known_hosts");
        append(&path, &entry_line("127.0.0.3", 2202, &ed25519(8))).unwrap();
        let k = KnownHosts::load(std::slice::from_ref(&path)).unwrap();
        assert_eq!(k.check("127.0.0.3", 2202, &ed25519(8)), Verdict::Match);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn fingerprint_matches_ssh_keygen() {
        // `ssh-keygen -lf` printed this fingerprint for REAL_KEY.
        let blob = STANDARD.decode(REAL_KEY).unwrap();
        assert_eq!(
            fingerprint(&blob),
            "SHA256:zNkZZ/BZ9h+Raj68YkNJrAUFbQFg0iS80JyXQGs/NRU"
        );
    }
}
