//! Slurm `--array` syntax: `0-99`, `1-100:3` (step), `0-999%20` (at most 20 running at
//! once), `1,5,9-12`, and combinations such as `1-5,10-20:2%4`.
//!
//! This module owns the grammar, its expansion into indices (in the order written) and its
//! errors, each with the byte offset of the problem. It does no I/O.
//!
//! ```text
//! spec    = element *("," element) ["%" throttle]
//! element = index ["-" index [":" step]]
//! ```

use std::collections::HashSet;

/// The most indices one spec may expand to.
pub const MAX_INDICES: u64 = 10_000_000;

/// A parse error; `offset` is the byte offset in the spec string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SpecError {
    pub offset: usize,
    pub message: String,
}

impl SpecError {
    pub fn new(offset: usize, message: impl Into<String>) -> SpecError {
        SpecError {
            offset,
            message: message.into(),
        }
    }
}

/// The expanded array: indices in order, plus the `%N` throttle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArraySpec {
    pub indices: Vec<u64>,
    pub throttle: Option<u32>,
}

/// Parses and expands a Slurm array spec.
pub fn parse(spec: &str) -> Result<ArraySpec, SpecError> {
    if spec.is_empty() {
        return Err(SpecError::new(0, "empty array spec"));
    }
    let (elements, throttle) = Parser { text: spec, pos: 0 }.spec()?;
    check_count(&elements)?;
    let indices = expand(&elements);
    if let Some((index, offset)) = first_duplicate(&elements, &indices) {
        return Err(SpecError::new(
            offset,
            format!("index {index} is listed twice"),
        ));
    }
    Ok(ArraySpec { indices, throttle })
}

/// One comma-separated element: `start`, or `start-end[:step]`.
#[derive(Debug, Clone, Copy)]
struct Element {
    start: u64,
    end: u64,
    step: u64,
    /// Byte offset of the element in the spec.
    offset: usize,
}

impl Element {
    /// How many indices the element yields (saturating: `0-18446744073709551615` is one
    /// short of its true count, still far above the limit).
    fn count(&self) -> u64 {
        ((self.end - self.start) / self.step).saturating_add(1)
    }

    fn for_each(&self, mut f: impl FnMut(u64)) {
        let mut i = self.start;
        loop {
            f(i);
            match i.checked_add(self.step) {
                Some(next) if next <= self.end => i = next,
                _ => break,
            }
        }
    }
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn spec(mut self) -> Result<(Vec<Element>, Option<u32>), SpecError> {
        let mut elements = Vec::new();
        loop {
            let (element, follow) = self.element()?;
            elements.push(element);
            match self.peek() {
                None => return Ok((elements, None)),
                Some(b',') => self.pos += 1,
                Some(b'%') => {
                    self.pos += 1;
                    let throttle = self.throttle()?;
                    return Ok((elements, Some(throttle)));
                }
                Some(_) => return Err(self.unexpected(follow)),
            }
        }
    }

    /// An element and a description of what may follow it, for error messages.
    fn element(&mut self) -> Result<(Element, &'static str), SpecError> {
        let offset = self.pos;
        let start = self.number("an index")?;
        let mut element = Element {
            start,
            end: start,
            step: 1,
            offset,
        };
        if !self.eat(b'-') {
            if self.peek() == Some(b':') {
                return Err(SpecError::new(
                    self.pos,
                    "a step needs a range, as in 1-9:2",
                ));
            }
            return Ok((element, "a digit, '-', ',' or '%'"));
        }
        let end_offset = self.pos;
        element.end = self.number("the end of the range")?;
        if element.end < start {
            let message = format!("end {} is below start {start}", element.end);
            return Err(SpecError::new(end_offset, message));
        }
        if !self.eat(b':') {
            return Ok((element, "a digit, ':', ',' or '%'"));
        }
        let step_offset = self.pos;
        element.step = self.number("a step")?;
        if element.step == 0 {
            return Err(SpecError::new(step_offset, "step must be at least 1"));
        }
        Ok((element, "a digit, ',' or '%'"))
    }

    /// The `N` of `%N`, which must be the end of the spec.
    fn throttle(&mut self) -> Result<u32, SpecError> {
        let offset = self.pos;
        let n = self.number("a number after '%'")?;
        if n == 0 {
            return Err(SpecError::new(offset, "throttle %0 must be at least 1"));
        }
        let n = u32::try_from(n).map_err(|_| {
            let message = format!("throttle %{n} is too large (at most {})", u32::MAX);
            SpecError::new(offset, message)
        })?;
        if self.peek().is_some() {
            return Err(self.unexpected("the end of the spec after the throttle"));
        }
        Ok(n)
    }

    /// A run of ASCII digits; `what` names it in the error when there is none.
    fn number(&mut self, what: &str) -> Result<u64, SpecError> {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        let digits = &self.text[start..self.pos];
        if digits.is_empty() {
            return Err(self.unexpected(what));
        }
        digits.parse().map_err(|_| {
            let message = format!("{digits} is too large (at most {})", u64::MAX);
            SpecError::new(start, message)
        })
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        let found = self.peek() == Some(byte);
        if found {
            self.pos += 1;
        }
        found
    }

    fn unexpected(&self, expected: &str) -> SpecError {
        let message = match self.text[self.pos..].chars().next() {
            Some(c) => format!("expected {expected}, found '{c}'"),
            None => format!("expected {expected}, found the end of the spec"),
        };
        SpecError::new(self.pos, message)
    }
}

/// Refuses specs that would expand to more than [`MAX_INDICES`], before allocating.
fn check_count(elements: &[Element]) -> Result<(), SpecError> {
    let mut total: u64 = 0;
    for element in elements {
        total = total.saturating_add(element.count());
        if total > MAX_INDICES {
            let message = format!("more than {MAX_INDICES} indices");
            return Err(SpecError::new(element.offset, message));
        }
    }
    Ok(())
}

fn expand(elements: &[Element]) -> Vec<u64> {
    let total = elements.iter().map(Element::count).sum::<u64>();
    let mut indices = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for element in elements {
        element.for_each(|i| indices.push(i));
    }
    indices
}

/// The first index (in spec order) that repeats an earlier one, with its element's offset.
fn first_duplicate(elements: &[Element], indices: &[u64]) -> Option<(u64, usize)> {
    if !ranges_overlap(elements) {
        return None;
    }
    let mut sorted = indices.to_vec();
    sorted.sort_unstable();
    let mut repeated: Vec<u64> = sorted
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| w[0])
        .collect();
    repeated.dedup();
    if repeated.is_empty() {
        return None;
    }
    let mut seen = HashSet::new();
    let mut found = None;
    for element in elements {
        element.for_each(|i| {
            if found.is_none() && repeated.binary_search(&i).is_ok() && !seen.insert(i) {
                found = Some((i, element.offset));
            }
        });
        if found.is_some() {
            break;
        }
    }
    found
}

/// Whether any two elements' `[start, end]` intervals meet (the only way to repeat an index).
fn ranges_overlap(elements: &[Element]) -> bool {
    let mut spans: Vec<(u64, u64)> = elements.iter().map(|e| (e.start, e.end)).collect();
    spans.sort_unstable();
    spans.windows(2).any(|w| w[1].0 <= w[0].1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn indices(spec: &str) -> Vec<u64> {
        parse(spec).unwrap().indices
    }

    fn error(spec: &str) -> (usize, String) {
        let e = parse(spec).unwrap_err();
        (e.offset, e.message)
    }

    #[test]
    fn ranges_steps_and_lists() {
        assert_eq!(indices("0-4"), [0, 1, 2, 3, 4]);
        assert_eq!(indices("7"), [7]);
        assert_eq!(indices("1-10:3"), [1, 4, 7, 10]);
        assert_eq!(indices("1-11:3"), [1, 4, 7, 10]);
        assert_eq!(indices("1,5,9-12"), [1, 5, 9, 10, 11, 12]);
        assert_eq!(indices("9-12,1,5"), [9, 10, 11, 12, 1, 5]);
        assert_eq!(indices("3-3"), [3]);
        assert_eq!(indices("0-99").len(), 100);
    }

    #[test]
    fn throttle() {
        let spec = parse("0-999%20").unwrap();
        assert_eq!(spec.indices.len(), 1000);
        assert_eq!(spec.throttle, Some(20));
        assert_eq!(parse("0-9").unwrap().throttle, None);
        let spec = parse("1-5,10-20:2%4").unwrap();
        assert_eq!(spec.indices, [1, 2, 3, 4, 5, 10, 12, 14, 16, 18, 20]);
        assert_eq!(spec.throttle, Some(4));
    }

    #[test]
    fn extremes_do_not_overflow() {
        let max = u64::MAX;
        assert_eq!(indices(&format!("{max}")), [max]);
        assert_eq!(
            indices(&format!("{}-{max}", max - 2)),
            [max - 2, max - 1, max]
        );
        assert_eq!(indices(&format!("0-{max}:{max}")), [0, max]);
    }

    #[test]
    fn errors_point_at_the_problem() {
        assert_eq!(error(""), (0, "empty array spec".into()));
        assert_eq!(error("5-1"), (2, "end 1 is below start 5".into()));
        assert_eq!(error("0-9:0"), (4, "step must be at least 1".into()));
        assert_eq!(error("0-9%0"), (4, "throttle %0 must be at least 1".into()));
        assert_eq!(
            error("0-9%"),
            (
                4,
                "expected a number after '%', found the end of the spec".into()
            )
        );
        assert_eq!(error("abc"), (0, "expected an index, found 'a'".into()));
        assert_eq!(error("1,,2"), (2, "expected an index, found ','".into()));
        assert_eq!(
            error("1,"),
            (2, "expected an index, found the end of the spec".into())
        );
        assert_eq!(
            error("1-"),
            (
                2,
                "expected the end of the range, found the end of the spec".into()
            )
        );
        assert_eq!(error("-5"), (0, "expected an index, found '-'".into()));
        assert_eq!(
            error("1x"),
            (1, "expected a digit, '-', ',' or '%', found 'x'".into())
        );
        assert_eq!(
            error("1-5x"),
            (3, "expected a digit, ':', ',' or '%', found 'x'".into())
        );
        assert_eq!(
            error("1-5:2x"),
            (5, "expected a digit, ',' or '%', found 'x'".into())
        );
        assert_eq!(
            error("1 - 5"),
            (1, "expected a digit, '-', ',' or '%', found ' '".into())
        );
        assert_eq!(
            error("5:2"),
            (1, "a step needs a range, as in 1-9:2".into())
        );
        assert_eq!(error("1-3:x"), (4, "expected a step, found 'x'".into()));
        assert_eq!(
            error("0-9%2,5"),
            (
                5,
                "expected the end of the spec after the throttle, found ','".into()
            )
        );
        assert_eq!(
            error("0-9%x"),
            (4, "expected a number after '%', found 'x'".into())
        );
        assert_eq!(
            error("1-é"),
            (2, "expected the end of the range, found 'é'".into())
        );
    }

    #[test]
    fn too_large_numbers() {
        assert_eq!(
            error("18446744073709551616"),
            (
                0,
                "18446744073709551616 is too large (at most 18446744073709551615)".into()
            )
        );
        assert_eq!(
            error("1%4294967296"),
            (
                2,
                "throttle %4294967296 is too large (at most 4294967295)".into()
            )
        );
        assert_eq!(parse("1%4294967295").unwrap().throttle, Some(u32::MAX));
    }

    #[test]
    fn duplicates_name_the_index_and_where_it_repeats() {
        assert_eq!(error("1,2,1"), (4, "index 1 is listed twice".into()));
        assert_eq!(error("0-10,20,5-6"), (8, "index 5 is listed twice".into()));
        assert_eq!(
            error("0-10:2,1-9:3,3-5"),
            (7, "index 4 is listed twice".into())
        );
        // Interleaved steps overlap as intervals but share no index.
        assert_eq!(indices("0-10:2,1-9:2").len(), 11);
    }

    #[test]
    fn more_than_the_limit_is_refused_without_expanding() {
        assert_eq!(indices("0-9999999").len(), 10_000_000);
        assert_eq!(
            error("0-10000000"),
            (0, "more than 10000000 indices".into())
        );
        assert_eq!(
            error("0-9999999,20000000"),
            (10, "more than 10000000 indices".into())
        );
        assert_eq!(
            error(&format!("0-{}", u64::MAX)),
            (0, "more than 10000000 indices".into())
        );
    }

    proptest! {
        #[test]
        fn stepped_range_has_ceil_len(a in 0u64..1_000_000, len in 1u64..5_000, s in 1u64..200) {
            let b = a + len - 1;
            let got = indices(&format!("{a}-{b}:{s}"));
            prop_assert_eq!(got.len() as u64, (b - a + 1).div_ceil(s));
            prop_assert_eq!(got[0], a);
            prop_assert!(got.iter().all(|&i| (a..=b).contains(&i) && (i - a) % s == 0));
            prop_assert!(got.windows(2).all(|w| w[1] - w[0] == s));
        }

        #[test]
        fn distinct_lists_round_trip(
            list in proptest::collection::hash_set(any::<u64>(), 1..50),
            throttle in proptest::option::of(1u32..),
        ) {
            let list: Vec<u64> = list.into_iter().collect();
            let mut text = list.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
            if let Some(n) = throttle {
                text.push_str(&format!("%{n}"));
            }
            let spec = parse(&text).unwrap();
            prop_assert_eq!(spec.indices, list);
            prop_assert_eq!(spec.throttle, throttle);
        }

        #[test]
        fn any_input_parses_or_errs_within_bounds(text in "[0-9,:%x -]{0,24}") {
            match parse(&text) {
                Ok(spec) => prop_assert!(!spec.indices.is_empty()),
                Err(e) => prop_assert!(e.offset <= text.len()),
            }
        }
    }
}
