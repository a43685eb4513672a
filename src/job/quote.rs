//! Shell quoting for substituted values: the remote shell sees the value as one word of text.

use std::borrow::Cow;

/// Quotes `value` for a POSIX shell; the result expands to exactly `value`.
pub fn quote(value: &[u8]) -> Cow<'_, str> {
    let s = String::from_utf8_lossy(value);
    Cow::Owned(format!("'{}'", s.replace('\'', r"'\''")))
}
