//! hosts.toml: never a panic, whatever the text; an error always points inside the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let env = dts::inventory::Env {
        home: Some("/home/fuzz".into()),
        user: "fuzz".into(),
        cwd: "/work".into(),
        ..Default::default()
    };
    if let Err(e) = dts::inventory::parse(Path::new("hosts.toml"), text, &env) {
        let lines = text.split('\n').count().max(1);
        assert!(e.line >= 1 && e.line <= lines + 1, "{e} for {} lines", lines);
        assert!(e.col >= 1);
    }
});
