//! Command templates and quoting: never a panic, for any template and any item bytes; a
//! rendered command never carries a NUL byte.
#![no_main]

use dts::job::{Context, Template};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: (&str, Vec<String>, &[u8], u64)| {
    let (line, words, item, index) = input;
    let ctx = Context {
        item,
        seq: 1,
        index,
        host: "node01",
    };
    for template in [Template::shell(line), Template::argv(&words), Template::key(line)].into_iter().flatten() {
        let rendered = template.render(&ctx);
        if !item.contains(&0) {
            assert!(!rendered.contains('\0') || line.contains('\0') || words.iter().any(|w| w.contains('\0')));
        }
        let _ = template.render_key(&ctx);
    }
    assert!(!dts::job::quote::quote(item).contains('\0'));
});
