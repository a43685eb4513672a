//! Shell quoting for substituted values: whatever the bytes, the remote POSIX shell (dash,
//! bash, zsh) sees the quoted text as exactly one word that expands to exactly those bytes.
//!
//! - Words made only of `[A-Za-z0-9_./:,+@%-]` stay bare. `=` and `^` are not in the set
//!   although the shells usually leave them alone: a bare `A=b` as the first word of a
//!   command is an assignment, a leading `=` is an `EQUALS` expansion in zsh, and `^` negates
//!   a glob under zsh's `EXTENDED_GLOB`.
//! - Other valid UTF-8 goes in single quotes, a `'` written as `\'` between quoted runs.
//! - Bytes that are not UTF-8 are written as `"$(printf '\ooo')"`, one command substitution
//!   per run. Such bytes are never a newline (which command substitution would strip), since a
//!   newline is valid UTF-8 and travels in the single-quoted part.
//! - A NUL byte cannot be part of any shell word or argument; it is written the same way as
//!   an invalid byte, so the command text itself never holds a NUL, and the shell drops it.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Quotes `value` for a POSIX shell; the result expands to exactly `value`, as one word.
pub fn quote(value: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(value) {
        Ok(text) if is_bare(text) => Cow::Borrowed(text),
        Ok(text) if !text.contains('\0') => Cow::Owned(single_quoted(text)),
        _ => Cow::Owned(quote_bytes(value)),
    }
}

/// Whether `text` can stand unquoted: non-empty and only characters no shell expands.
fn is_bare(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(is_bare_byte)
}

fn is_bare_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"_./:,+@%-".contains(&b)
}

/// `text` in single quotes, each `'` as `\'` outside them; no empty `''` pairs except for
/// the empty string itself.
fn single_quoted(text: &str) -> String {
    if text.is_empty() {
        return "''".into();
    }
    let mut out = String::with_capacity(text.len() + 2);
    for (i, run) in text.split('\'').enumerate() {
        if i > 0 {
            out.push_str(r"\'");
        }
        if !run.is_empty() {
            out.push('\'');
            out.push_str(run);
            out.push('\'');
        }
    }
    out
}

/// The general case: alternating quoted text and `printf` runs for bytes text cannot carry.
fn quote_bytes(value: &[u8]) -> String {
    let mut out = String::with_capacity(value.len() * 2 + 2);
    let mut raw: Vec<u8> = Vec::new();
    for chunk in value.utf8_chunks() {
        for (i, piece) in chunk.valid().split('\0').enumerate() {
            if i > 0 {
                raw.push(0);
            }
            if !piece.is_empty() {
                flush_printf(&mut out, &mut raw);
                out.push_str(&single_quoted(piece));
            }
        }
        raw.extend_from_slice(chunk.invalid());
    }
    flush_printf(&mut out, &mut raw);
    out
}

/// Appends `"$(printf '\ooo...')"` for the pending raw bytes, if any, and clears them.
fn flush_printf(out: &mut String, raw: &mut Vec<u8>) {
    if raw.is_empty() {
        return;
    }
    out.push_str("\"$(printf '");
    for b in raw.drain(..) {
        let _ = write!(out, "\\{b:03o}");
    }
    out.push_str("')\"");
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::process::Command;

    /// What `shell -c "printf %s <quoted>"` prints, byte for byte.
    fn through_shell(shell: &str, value: &[u8]) -> Vec<u8> {
        let script = format!("printf %s {}", quote(value));
        let out = Command::new(shell)
            .arg("-c")
            .arg(&script)
            .env("HOME", "/nonexistent-home")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {shell}: {e}"));
        assert!(
            out.status.success(),
            "{shell} failed on {script:?}: {out:?}"
        );
        out.stdout
    }

    /// Shells found on this machine; `/bin/sh` always.
    fn shells() -> Vec<&'static str> {
        let candidates = ["/bin/sh", "dash", "bash", "zsh"];
        candidates
            .into_iter()
            .filter(|s| Command::new(s).arg("-c").arg(":").output().is_ok())
            .collect()
    }

    /// Counts the words `sh` sees in `quote(value)`.
    fn word_count(value: &[u8]) -> String {
        let script = format!("set -- {}; printf %s $#", quote(value));
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    const NASTY: &[&[u8]] = &[
        b"",
        b"plain",
        b"with space",
        b"  leading and trailing  ",
        b"it's",
        b"'",
        b"''",
        b"'quoted'",
        b"\"double\"",
        b"$(touch /tmp/dts-pwned)",
        b"`id`",
        b"${HOME}",
        b"$HOME",
        b"a;b",
        b"a|b",
        b"a&b",
        b"a&&b||c",
        b"line1\nline2",
        b"\n",
        b"trailing newline\n\n",
        b"*",
        b"?",
        b"[a-z]",
        b"~",
        b"~root",
        b"a=b",
        b"=ls",
        b"^x",
        b"-n",
        b"-e",
        b"--",
        b"\\",
        b"\\n",
        b"%s",
        b"{a,b}",
        b"!",
        b"#comment",
        b"tab\there",
        b"\r\n",
        "unicode é ✓ 日本".as_bytes(),
        b"\xff",
        b"\xff\xfe\n\xfd",
        b"caf\xe9 'x'\n",
        b"\xe2\x82",
        b"\x80abc\x80",
        b"\x01\x02\x1b[31m",
    ];

    #[test]
    fn safe_words_stay_bare() {
        for word in ["abc", "a-b_c.d/e:f,g+h@i%j", "-n", "/usr/bin/env", "42"] {
            assert_eq!(quote(word.as_bytes()), word);
        }
    }

    #[test]
    fn unsafe_words_are_single_quoted() {
        assert_eq!(quote(b""), "''");
        assert_eq!(quote(b"a b"), "'a b'");
        assert_eq!(quote(b"a=b"), "'a=b'");
        assert_eq!(quote(b"it's"), r"'it'\''s'");
        assert_eq!(quote(b"'"), r"\'");
        assert_eq!(quote(b"'x'"), r"\''x'\'");
        assert_eq!(quote(b"a\nb"), "'a\nb'");
    }

    #[test]
    fn invalid_utf8_goes_through_printf() {
        assert_eq!(quote(b"\xff"), r#""$(printf '\377')""#);
        assert_eq!(quote(b"a\xff\xfeb c"), r#"'a'"$(printf '\377\376')"'b c'"#);
    }

    #[test]
    fn nul_never_reaches_the_command_text() {
        let quoted = quote(b"a\0b");
        assert!(!quoted.contains('\0'));
        assert_eq!(quoted, r#"'a'"$(printf '\000')"'b'"#);
    }

    #[test]
    fn nasty_values_come_back_exactly_from_every_shell() {
        for shell in shells() {
            for value in NASTY {
                assert_eq!(
                    through_shell(shell, value),
                    *value,
                    "{shell}: {value:?} quoted as {}",
                    quote(value)
                );
            }
        }
    }

    #[test]
    fn nasty_values_are_one_word() {
        for value in NASTY {
            assert_eq!(
                word_count(value),
                "1",
                "{value:?} quoted as {}",
                quote(value)
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn random_bytes_round_trip_through_sh(value in proptest::collection::vec(1u8.., 0..40)) {
            prop_assert_eq!(through_shell("/bin/sh", &value), value);
        }

        #[test]
        fn quoted_text_never_holds_nul(value in proptest::collection::vec(any::<u8>(), 0..40)) {
            prop_assert!(!quote(&value).contains('\0'));
        }
    }
}
