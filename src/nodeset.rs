//! Nodeset expansion: `node[01-16]`, `n[1-3,7]`, `rack[1-2]-n[1-4]` (ClusterShell syntax).
//!
//! This module owns the pattern language used by host names and addresses in the inventory:
//!
//! - `node[01-16]` is a range; a first bound written with a leading zero sets the width
//!   (`[08-10]` gives `08 09 10`, `[8-10]` gives `8 9 10`);
//! - `n[1-3,7]` lists ranges and single numbers, expanded in the order written;
//! - `n[1-10/3]` steps through a range (`n1 n4 n7 n10`);
//! - several bracket groups give the cartesian product, leftmost group slowest
//!   (`r[1-2]-n[1-2]` gives `r1-n1 r1-n2 r2-n1 r2-n2`);
//! - commas outside brackets join patterns (`login,node[1-2]` gives `login node1 node2`);
//! - a pattern without brackets is the name itself.
//!
//! Expansion is capped at [`MAX_NAMES`] names so a typo cannot exhaust memory. Errors carry
//! the byte offset in the pattern where the problem is, so callers can point at the column.

/// The most names one pattern may expand to.
pub const MAX_NAMES: usize = 100_000;

/// A nodeset pattern that does not parse; `offset` is the byte offset in the pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct NodesetError {
    pub offset: usize,
    pub message: String,
}

fn error(offset: usize, message: impl Into<String>) -> NodesetError {
    NodesetError {
        offset,
        message: message.into(),
    }
}

/// Expands `pattern` into host names, in order, keeping zero padding.
pub fn expand(pattern: &str) -> Result<Vec<String>, NodesetError> {
    if pattern.is_empty() {
        return Err(error(
            0,
            "empty nodeset: expected a name such as `node[01-04]`",
        ));
    }
    if let Some(offset) = pattern.find(char::is_whitespace) {
        return Err(error(offset, "whitespace is not allowed in a nodeset"));
    }
    let mut names = Vec::new();
    for (offset, part) in split_top_level(pattern)? {
        let segments = parse_part(part, offset)?;
        if count_within(&segments, MAX_NAMES - names.len()).is_none() {
            return Err(error(
                offset,
                format!("nodeset expands to more than {MAX_NAMES} names"),
            ));
        }
        names.extend(product(&segments));
    }
    Ok(names)
}

/// The number of names `segments` expand to, or `None` when it exceeds `limit`.
fn count_within(segments: &[Segment<'_>], limit: usize) -> Option<usize> {
    segments
        .iter()
        .map(Segment::len)
        .try_fold(1usize, |acc, n| {
            acc.checked_mul(n).filter(|&total| total <= limit)
        })
}

/// Splits `pattern` at commas outside brackets, checking that brackets balance and do not
/// nest. Returns each part with its byte offset.
fn split_top_level(pattern: &str) -> Result<Vec<(usize, &str)>, NodesetError> {
    let mut parts = Vec::new();
    let mut open: Option<usize> = None;
    let mut start = 0;
    for (i, byte) in pattern.bytes().enumerate() {
        match (byte, open) {
            (b'[', Some(_)) => return Err(error(i, "nested `[` inside a bracket group")),
            (b'[', None) => open = Some(i),
            (b']', None) => return Err(error(i, "`]` without a matching `[`")),
            (b']', Some(_)) => open = None,
            (b',', None) => {
                parts.push(non_empty_part(pattern, start, i)?);
                start = i + 1;
            }
            _ => {}
        }
    }
    if let Some(at) = open {
        return Err(error(at, "`[` is never closed: expected `]`"));
    }
    parts.push(non_empty_part(pattern, start, pattern.len())?);
    Ok(parts)
}

fn non_empty_part(pattern: &str, start: usize, end: usize) -> Result<(usize, &str), NodesetError> {
    if start == end {
        return Err(error(start, "empty name in comma-separated nodeset"));
    }
    Ok((start, &pattern[start..end]))
}

/// A piece of one pattern: literal text, or the alternatives of one bracket group.
#[derive(Debug)]
enum Segment<'a> {
    Literal(&'a str),
    Group(Vec<Element<'a>>),
}

impl Segment<'_> {
    fn len(&self) -> usize {
        match self {
            Segment::Literal(_) => 1,
            Segment::Group(elements) => elements
                .iter()
                .fold(0usize, |total, element| total.saturating_add(element.len())),
        }
    }

    fn values(&self) -> Vec<String> {
        match self {
            Segment::Literal(text) => vec![(*text).to_string()],
            Segment::Group(elements) => elements.iter().flat_map(Element::values).collect(),
        }
    }
}

/// One comma-separated element of a bracket group.
#[derive(Debug)]
enum Element<'a> {
    /// A single number, kept exactly as written (`07` stays `07`).
    Single(&'a str),
    Range {
        low: u64,
        high: u64,
        step: u64,
        width: usize,
    },
}

impl Element<'_> {
    /// The number of values, capped at [`MAX_NAMES`] + 1 (anything above is refused anyway).
    fn len(&self) -> usize {
        match *self {
            Element::Single(_) => 1,
            Element::Range {
                low, high, step, ..
            } => {
                let count = ((high - low) / step).saturating_add(1);
                usize::try_from(count).map_or(MAX_NAMES + 1, |n| n.min(MAX_NAMES + 1))
            }
        }
    }

    fn values(&self) -> Vec<String> {
        match *self {
            Element::Single(text) => vec![text.to_string()],
            Element::Range {
                low,
                high,
                step,
                width,
            } => {
                let steps = usize::try_from(step).unwrap_or(usize::MAX);
                (low..=high)
                    .step_by(steps)
                    .map(|n| format!("{n:0width$}"))
                    .collect()
            }
        }
    }
}

/// Parses one comma-free part; brackets are known to balance and not nest.
fn parse_part(part: &str, base: usize) -> Result<Vec<Segment<'_>>, NodesetError> {
    let mut segments = Vec::new();
    let mut rest = 0;
    while let Some(open) = part[rest..].find('[').map(|i| rest + i) {
        let close = open
            + part[open..]
                .find(']')
                .expect("brackets were checked to balance");
        if open > rest {
            segments.push(Segment::Literal(&part[rest..open]));
        }
        let body = &part[open + 1..close];
        segments.push(Segment::Group(parse_group(body, base + open)?));
        rest = close + 1;
    }
    if rest < part.len() {
        segments.push(Segment::Literal(&part[rest..]));
    }
    Ok(segments)
}

/// Parses the inside of `[...]`; `open` is the byte offset of the `[` in the whole pattern.
fn parse_group(body: &str, open: usize) -> Result<Vec<Element<'_>>, NodesetError> {
    if body.is_empty() {
        return Err(error(
            open,
            "empty brackets `[]`: expected numbers such as `[1-4]`",
        ));
    }
    let mut elements = Vec::new();
    let mut offset = open + 1;
    for text in body.split(',') {
        if text.is_empty() {
            return Err(error(
                offset,
                "empty element in brackets: expected a number or a range",
            ));
        }
        elements.push(parse_element(text, offset)?);
        offset += text.len() + 1;
    }
    Ok(elements)
}

/// Parses `7`, `1-16`, `01-16` or `1-10/3`; `offset` is where `text` starts in the pattern.
fn parse_element(text: &str, offset: usize) -> Result<Element<'_>, NodesetError> {
    let (range, step) = match text.split_once('/') {
        Some((range, step)) => (range, Some((step, offset + range.len() + 1))),
        None => (text, None),
    };
    let Some((low_text, high_text)) = range.split_once('-') else {
        if step.is_some() {
            return Err(error(offset, "a step needs a range, e.g. `[1-10/3]`"));
        }
        parse_number(range, offset)?;
        return Ok(Element::Single(range));
    };
    let low = parse_number(low_text, offset)?;
    let high = parse_number(high_text, offset + low_text.len() + 1)?;
    if high < low {
        return Err(error(
            offset,
            format!("descending range `{range}`: write it as `{high_text}-{low_text}`"),
        ));
    }
    let step = match step {
        Some((step_text, step_offset)) => parse_step(step_text, step_offset)?,
        None => 1,
    };
    let width = if low_text.len() > 1 && low_text.starts_with('0') {
        low_text.len()
    } else {
        0
    };
    Ok(Element::Range {
        low,
        high,
        step,
        width,
    })
}

fn parse_number(text: &str, offset: usize) -> Result<u64, NodesetError> {
    if text.is_empty() {
        return Err(error(
            offset,
            "missing number: expected digits such as `1` or `01`",
        ));
    }
    if let Some(i) = text.find(|c: char| !c.is_ascii_digit()) {
        return Err(error(
            offset + i,
            format!("expected a number, found `{text}`"),
        ));
    }
    text.parse()
        .map_err(|_| error(offset, format!("number `{text}` is too large")))
}

fn parse_step(text: &str, offset: usize) -> Result<u64, NodesetError> {
    match parse_number(text, offset)? {
        0 => Err(error(offset, "step must be at least 1")),
        step => Ok(step),
    }
}

/// The cartesian product of the segments' values, leftmost segment varying slowest.
fn product(segments: &[Segment<'_>]) -> Vec<String> {
    let mut names = vec![String::new()];
    for segment in segments {
        let values = segment.values();
        names = names
            .iter()
            .flat_map(|prefix| {
                values.iter().map(move |value| {
                    let mut name = prefix.clone();
                    name.push_str(value);
                    name
                })
            })
            .collect();
    }
    names
}

/// Folds host names back into a nodeset for display: `node01,node02,node03,gpu1` →
/// `node[01-03],gpu1`. Names group by prefix and digit width (a zero-padded width, or none);
/// groups come in order of first appearance.
pub fn fold(names: &[&str]) -> String {
    let split = |name: &str| -> (usize, usize) {
        let digits = name.bytes().rev().take_while(u8::is_ascii_digit).count();
        (name.len() - digits, digits)
    };
    // Widths that some name of a prefix pads to, e.g. `n08` makes `n` padded to 2.
    let padded: Vec<(&str, usize)> = names
        .iter()
        .filter_map(|name| {
            let (cut, digits) = split(name);
            (digits > 1 && name[cut..].starts_with('0')).then(|| (&name[..cut], digits))
        })
        .collect();
    let mut groups: Vec<(&str, usize, Vec<u64>)> = Vec::new();
    let mut plain: Vec<String> = Vec::new();
    for name in names {
        let (cut, digits) = split(name);
        let (prefix, number) = name.split_at(cut);
        let Ok(n) = number.parse::<u64>() else {
            plain.push((*name).to_string());
            continue;
        };
        let width = if padded.contains(&(prefix, digits)) {
            digits
        } else {
            0
        };
        match groups
            .iter_mut()
            .find(|(p, w, _)| *p == prefix && *w == width)
        {
            Some((_, _, numbers)) => numbers.push(n),
            None => groups.push((prefix, width, vec![n])),
        }
    }
    let mut parts: Vec<String> = groups
        .into_iter()
        .map(|(prefix, width, numbers)| fold_group(prefix, width, numbers))
        .collect();
    parts.extend(plain);
    parts.join(",")
}

fn fold_group(prefix: &str, width: usize, mut numbers: Vec<u64>) -> String {
    numbers.sort_unstable();
    numbers.dedup();
    if numbers.len() == 1 {
        return format!("{prefix}{:0width$}", numbers[0]);
    }
    let mut ranges = Vec::new();
    let mut i = 0;
    while i < numbers.len() {
        let start = numbers[i];
        while i + 1 < numbers.len() && numbers[i + 1] == numbers[i] + 1 {
            i += 1;
        }
        let end = numbers[i];
        ranges.push(if start == end {
            format!("{start:0width$}")
        } else {
            format!("{start:0width$}-{end:0width$}")
        });
        i += 1;
    }
    format!("{prefix}[{}]", ranges.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn names(pattern: &str) -> Vec<String> {
        expand(pattern).unwrap_or_else(|e| panic!("{pattern}: {e} at {}", e.offset))
    }

    fn err(pattern: &str) -> (usize, String) {
        let e = expand(pattern).expect_err(pattern);
        (e.offset, e.message)
    }

    #[test]
    fn plain_name_is_itself() {
        assert_eq!(names("login"), ["login"]);
        assert_eq!(names("10.0.0.1"), ["10.0.0.1"]);
    }

    #[test]
    fn range_keeps_zero_padding() {
        let expected: Vec<String> = (1..=16).map(|i| format!("node{i:02}")).collect();
        assert_eq!(names("node[01-16]"), expected);
    }

    #[test]
    fn padding_comes_from_a_leading_zero() {
        assert_eq!(names("[8-10]"), ["8", "9", "10"]);
        assert_eq!(names("[08-10]"), ["08", "09", "10"]);
        assert_eq!(names("n[0-2]"), ["n0", "n1", "n2"]);
        assert_eq!(names("n[001-002]"), ["n001", "n002"]);
        assert_eq!(names("n[07,1]"), ["n07", "n1"]);
    }

    #[test]
    fn list_of_ranges_and_numbers_in_order() {
        assert_eq!(names("n[1-3,7]"), ["n1", "n2", "n3", "n7"]);
        assert_eq!(names("n[7,1-2]"), ["n7", "n1", "n2"]);
    }

    #[test]
    fn several_groups_give_the_cartesian_product() {
        assert_eq!(names("r[1-2]-n[1-2]"), ["r1-n1", "r1-n2", "r2-n1", "r2-n2"]);
        assert_eq!(
            names("a[1-2]b[1-2]c[1-2]")[..3],
            ["a1b1c1", "a1b1c2", "a1b2c1"]
        );
        assert_eq!(names("a[1-2]b[1-2]c[1-2]").len(), 8);
    }

    #[test]
    fn groups_at_the_edges() {
        assert_eq!(names("[1-2]n"), ["1n", "2n"]);
        assert_eq!(
            names("10.0.[0-1].[1-2]"),
            ["10.0.0.1", "10.0.0.2", "10.0.1.1", "10.0.1.2"]
        );
    }

    #[test]
    fn step() {
        assert_eq!(names("n[1-10/3]"), ["n1", "n4", "n7", "n10"]);
        assert_eq!(names("n[01-09/4]"), ["n01", "n05", "n09"]);
        assert_eq!(names("n[1-2/5]"), ["n1"]);
    }

    #[test]
    fn commas_outside_brackets_join_patterns() {
        assert_eq!(names("login,n[1-2]"), ["login", "n1", "n2"]);
    }

    #[test]
    fn single_value_range() {
        assert_eq!(names("n[5-5]"), ["n5"]);
    }

    #[test]
    fn errors_point_at_the_problem() {
        assert_eq!(err("").0, 0);
        assert_eq!(err("node[1-3").0, 4);
        assert!(err("node[1-3").1.contains("never closed"));
        assert_eq!(err("node1-3]").0, 7);
        assert!(err("node1-3]").1.contains("without a matching"));
        assert_eq!(err("n[]").0, 1);
        assert!(err("n[]").1.contains("empty brackets"));
        assert_eq!(err("n[1,,2]").0, 4);
        assert!(err("n[1,,2]").1.contains("empty element"));
        assert_eq!(err("n[1,]").0, 4);
        assert_eq!(err("n[a-3]"), (2, "expected a number, found `a`".into()));
        assert_eq!(err("n[1-x]"), (4, "expected a number, found `x`".into()));
        assert_eq!(err("n[12x]").0, 4);
        assert_eq!(err("n[-3]").0, 2);
        assert!(err("n[-3]").1.contains("missing number"));
        assert_eq!(
            err("n[2,5-1]"),
            (4, "descending range `5-1`: write it as `1-5`".into())
        );
        assert_eq!(err("n[1[2]]").0, 3);
        assert!(err("n[1[2]]").1.contains("nested"));
        assert_eq!(err("a,,b").0, 2);
        assert_eq!(err("a,").0, 2);
        assert_eq!(err("a b").0, 1);
    }

    #[test]
    fn step_errors() {
        assert_eq!(err("n[1-9/0]"), (6, "step must be at least 1".into()));
        assert_eq!(err("n[1-9/x]").0, 6);
        assert_eq!(err("n[1-9/]").0, 6);
        assert!(err("n[3/2]").1.contains("step needs a range"));
    }

    #[test]
    fn too_large_numbers_and_expansions_are_refused() {
        assert!(err("n[99999999999999999999]").1.contains("too large"));
        let (offset, message) = err("n[0-100000]");
        assert_eq!(offset, 0);
        assert!(message.contains("more than 100000"), "{message}");
        assert!(err("n[0-18446744073709551615]").1.contains("more than"));
        assert!(err("a[1-1000]b[1-1000]").1.contains("more than"));
        assert_eq!(err("x,n[1-99999],y[1-2]").0, 13);
        assert_eq!(names("n[1-100000]").len(), MAX_NAMES);
    }

    proptest! {
        #[test]
        fn range_expands_to_distinct_padded_names(
            low in 0u64..2000, len in 0u64..300, width in 0usize..6,
        ) {
            let high = low + len;
            let pattern = if width > 1 {
                format!("p[{low:0width$}-{high}]")
            } else {
                format!("p[{low}-{high}]")
            };
            let got = expand(&pattern).unwrap();
            prop_assert_eq!(got.len() as u64, high - low + 1);
            let distinct: std::collections::HashSet<_> = got.iter().collect();
            prop_assert_eq!(distinct.len(), got.len());
            // `{low:0width$}` only has a leading zero when it is wider than `low` itself.
            let padded = width > 1 && format!("{low:0width$}").starts_with('0');
            let pad = if padded { width } else { 0 };
            for (name, n) in got.iter().zip(low..) {
                let formatted = format!("{n:0pad$}");
                prop_assert!(name.contains(&formatted));
                prop_assert_eq!(name, &format!("p{formatted}"));
            }
        }

        #[test]
        fn never_panics(pattern in r"[a-c0-9\[\]\-,/]{0,16}") {
            if let Err(e) = expand(&pattern) {
                prop_assert!(e.offset <= pattern.len());
            }
        }
    }

    #[test]
    fn fold_inverts_expand_for_display() {
        assert_eq!(
            fold(&["node01", "node02", "node03", "gpu1"]),
            "node[01-03],gpu1"
        );
        assert_eq!(fold(&["n1", "n3", "n4", "n10"]), "n[1,3-4,10]");
        assert_eq!(fold(&["login", "h1"]), "h1,login");
        assert_eq!(fold(&["h7"]), "h7");
        let names = expand("r[1-2]-n[08-10]").unwrap();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        assert_eq!(fold(&refs), "r1-n[08-10],r2-n[08-10]");
    }
}
