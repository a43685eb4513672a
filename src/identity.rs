//! Identity files the inventory names explicitly, checked when it is loaded, before any
//! connection: a missing or unreadable key is a configuration error (exit 2) that names the
//! key, the host and the inventory line, not an "authentication refused" from every host.
//! A private key that others may read is refused as OpenSSH refuses it ("UNPROTECTED
//! PRIVATE KEY FILE"). Keys found by default (ssh-agent, `~/.ssh/id_*`) are not checked:
//! they are optional.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::error::{Error, Located, line_col};
use crate::inventory::{Host, Transport};

/// Checks every distinct identity file of the SSH hosts in `hosts`, loaded from `path`
/// whose text is `text`; the first problem is the error.
pub fn check(hosts: &[Host], path: &Path, text: &str) -> Result<(), Error> {
    // SAFETY: getuid has no preconditions and always succeeds.
    let uid = unsafe { libc::getuid() };
    let mut checked = std::collections::HashSet::new();
    for host in hosts.iter().filter(|h| h.transport == Transport::Ssh) {
        for key in &host.identities {
            if !checked.insert(key) {
                continue;
            }
            if let Err(problem) = problem(key, uid) {
                let message = format!(
                    "host {}: identity file {}: {problem}",
                    host.name,
                    key.display()
                );
                return Err(locate(path, text, key, message));
            }
        }
    }
    Ok(())
}

/// What is wrong with the key file at `key` for user `uid`, as OpenSSH would see it.
fn problem(key: &Path, uid: u32) -> Result<(), String> {
    let meta = std::fs::metadata(key).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".to_string(),
        _ => format!("cannot read it: {e}"),
    })?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    let mode = meta.mode() & 0o777;
    // OpenSSH's sshkey_perm_ok: only a key the user owns must be private to them.
    if meta.uid() == uid && mode & 0o077 != 0 {
        return Err(format!(
            "permissions {mode:04o} are too open: a private key must not be accessible by \
             others (OpenSSH refuses it too; chmod 600 {})",
            key.display()
        ));
    }
    std::fs::File::open(key).map_err(|e| format!("cannot read it: {e}"))?;
    Ok(())
}

/// The error at the `identity` line naming `key`'s file name, when the text has one (the
/// value as written may be `~/…` or relative); else the inventory file alone.
fn locate(path: &Path, text: &str, key: &Path, message: String) -> Error {
    let name = key.file_name().map(|n| n.to_string_lossy().into_owned());
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let code = line.trim_start();
        if let (true, Some(name)) = (code.starts_with("identity"), &name) {
            if let Some(at) = line.find(name.as_str()) {
                // At the value's opening quote, as other inventory errors point.
                let start = line[..at].rfind(['"', '\'']).unwrap_or(at);
                let (line, col) = line_col(text, offset + start);
                return Located {
                    path: path.to_path_buf(),
                    line,
                    col,
                    message,
                }
                .into();
            }
        }
        offset += line.len();
    }
    Error::Usage(format!("{}: {message}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn host(name: &str, key: &Path) -> Host {
        let env = crate::inventory::Env {
            home: Some("/home/a".into()),
            user: "a".into(),
            cwd: "/".into(),
            ..Default::default()
        };
        let text = format!(
            "[[host]]\nname = \"{name}\"\nidentity = \"{}\"\n",
            key.display()
        );
        let mut hosts = crate::inventory::parse(Path::new("h.toml"), &text, &env)
            .unwrap()
            .hosts;
        hosts.remove(0)
    }

    fn message(hosts: &[Host], text: &str) -> String {
        check(hosts, Path::new("hosts.toml"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn missing_identity_file_is_a_located_configuration_error() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("id_missing");
        let text = format!("[defaults]\nslots = 1\nidentity = \"{}\"\n", key.display());
        let err = check(&[host("n1", &key)], Path::new("hosts.toml"), &text).unwrap_err();
        assert_eq!(err.exit_code(), crate::error::exit::USAGE);
        let expected = format!(
            "hosts.toml:3:12: host n1: identity file {}: no such file",
            key.display()
        );
        assert!(err.to_string().starts_with(&expected), "{err}");
    }

    #[test]
    fn private_key_readable_by_others_is_refused_as_openssh_does() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("id_open");
        std::fs::write(&key, "key").unwrap();
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let text = "[[host]]\nname = \"n1\"\nidentity = \"keys/id_open\"\n";
        let got = message(&[host("n1", &key)], text);
        assert!(
            got.starts_with("hosts.toml:3:12: host n1: identity file"),
            "{got}"
        );
        assert!(got.contains("permissions 0644 are too open"), "{got}");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        check(&[host("n1", &key)], Path::new("hosts.toml"), text).unwrap();
    }

    #[test]
    fn a_directory_is_not_a_key_and_the_error_names_the_file_without_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let got = message(&[host("n1", dir.path())], "");
        assert!(
            got.starts_with("hosts.toml: host n1: identity file"),
            "{got}"
        );
        assert!(got.ends_with("not a regular file"), "{got}");
    }

    #[test]
    fn local_hosts_and_default_keys_are_not_checked() {
        let mut local = host("l", Path::new("/nonexistent/key"));
        local.transport = Transport::Local;
        let mut default_keys = host("d", Path::new("/nonexistent/key"));
        default_keys.identities.clear();
        check(&[local, default_keys], Path::new("hosts.toml"), "").unwrap();
    }
}
