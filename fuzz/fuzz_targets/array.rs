//! Slurm array specs: never a panic; what parses respects the limits.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|spec: &str| {
    if let Ok(parsed) = dts::job::array::parse(spec) {
        assert!(parsed.indices.len() as u64 <= dts::job::array::MAX_INDICES);
        assert!(parsed.throttle.is_none_or(|n| n >= 1));
        let mut sorted = parsed.indices.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), parsed.indices.len(), "duplicates are refused");
    }
});
