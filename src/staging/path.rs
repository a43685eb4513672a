//! Validation of staged paths: a staged file must stay inside the task directory, so only
//! relative paths made of normal components are accepted, in both directions.

use thiserror::Error;

/// Why a staged path was refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PathError {
    #[error("staged path is empty")]
    Empty,
    #[error("staged path {0:?} is absolute; only paths inside the task directory can be staged")]
    Absolute(String),
    #[error("staged path {0:?} leaves the task directory with `..`")]
    Escapes(String),
    #[error("staged path {0:?} holds a NUL or newline")]
    BadByte(String),
}

/// Checks `raw` and returns it normalised (`.` components and repeated `/` removed).
pub fn validate(raw: &str) -> Result<String, PathError> {
    if raw.is_empty() {
        return Err(PathError::Empty);
    }
    if raw.contains(['\0', '\n']) {
        return Err(PathError::BadByte(raw.to_string()));
    }
    if raw.starts_with('/') {
        return Err(PathError::Absolute(raw.to_string()));
    }
    let mut parts = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(PathError::Escapes(raw.to_string())),
            normal => parts.push(normal),
        }
    }
    if parts.is_empty() {
        return Err(PathError::Empty);
    }
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn relative_paths_are_kept_and_normalised() {
        assert_eq!(validate("a/./b//c d é").unwrap(), "a/b/c d é");
        assert_eq!(validate("./x").unwrap(), "x");
    }

    #[test]
    fn escaping_and_absolute_paths_are_refused() {
        assert_eq!(
            validate("/etc/passwd"),
            Err(PathError::Absolute("/etc/passwd".into()))
        );
        assert_eq!(
            validate("a/../../b"),
            Err(PathError::Escapes("a/../../b".into()))
        );
        assert_eq!(validate(".."), Err(PathError::Escapes("..".into())));
        assert_eq!(validate("./"), Err(PathError::Empty));
        assert!(matches!(validate("a\nb"), Err(PathError::BadByte(_))));
    }

    proptest! {
        #[test]
        fn an_accepted_path_never_has_a_dot_dot_or_leading_slash(raw in "[a-z./]{0,12}") {
            if let Ok(p) = validate(&raw) {
                prop_assert!(!p.starts_with('/'));
                prop_assert!(p.split('/').all(|c| !c.is_empty() && c != "." && c != ".."));
            }
        }
    }
}
