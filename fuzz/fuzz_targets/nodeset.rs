//! Nodesets: never a panic; expansion stays under its cap; folding names back and
//! expanding again gives the same names.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|pattern: &str| {
    let Ok(names) = dts::nodeset::expand(pattern) else { return };
    assert!(names.len() <= dts::nodeset::MAX_NAMES);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let folded = dts::nodeset::fold(&refs);
    if let Ok(mut again) = dts::nodeset::expand(&folded) {
        let mut original = names.clone();
        original.sort();
        original.dedup();
        again.sort();
        again.dedup();
        assert_eq!(original, again, "fold({pattern:?}) = {folded:?}");
    }
});
