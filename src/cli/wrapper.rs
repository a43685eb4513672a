//! `dts wrapper` (hidden): the remote command line dts would send for a command, so that
//! benchmarks can run exactly that script from a bare SSH loop.

use std::time::Duration;

use crate::error::{Error, exit};
use crate::job::{self, Context};
use crate::transport::wrapper::{LoginShell, TaskScript};

pub fn run(shell: &str, words: &[String]) -> Result<i32, Error> {
    let command = job::resolve_command(words, None)?.render(&Context {
        item: b"",
        seq: 1,
        index: 0,
        host: "host",
        params: &[],
    });
    let script = TaskScript {
        env: &[("DTS_TASK_ID", "1")],
        workdir: None,
        command: &command,
        // The default --kill-grace.
        kill_grace: Duration::from_secs(5),
        secrets: false,
    }
    .launch(LoginShell::from_path(shell), &[]);
    print!("{}", script.command);
    Ok(exit::SUCCESS)
}
