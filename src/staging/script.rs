//! The host-side helpers of staging: short POSIX `sh` scripts run with
//! [`Command::Helper`](crate::transport::Command::Helper). They use only `sh`, `head -c`,
//! `wc`, `mkdir`, `ln`/`cp`, `cat`, `stat`, `rm`, and are as strict as the local side:
//!
//! - [`stage_in`] reads, on stdin, [`frame`](super::frame) entries `F MODE LEN c/HASH` (new
//!   contents for the run's cache), the end marker `E`, then a manifest of lines
//!   `HASH MODE PATH` (link that content at PATH in the task directory) or `- MODE PATH`
//!   (a directory). It refuses any other entry, a cache name that is not a hash, a short
//!   file, and a path that is absolute or has a `..`;
//! - [`pack`] prints the returned paths as frames: regular files and directories only,
//!   refusing (and naming) a symbolic link, a device or fifo, a name holding a newline, and
//!   a path the task did not make.
//!
//! Helper failures exit 3 with one `dts-stage: ...` line on stderr.

use crate::job::quote::quote;

/// The shell expression of the run directory on the host.
fn run_dir(run_id: &str) -> String {
    format!("\"$HOME\"/.cache/dts/runs/{}", quote(run_id.as_bytes()))
}

const DIE: &str = "d() { printf 'dts-stage: %s\\n' \"$1\" >&2; exit 3; }; ";

/// Unpacks new cache contents and links the task's inputs into its directory.
pub fn stage_in(run_id: &str, task_dir: &str) -> String {
    format!(
        "r={run}; t=\"$r\"/{task}; {DIE}\
         mkdir -p \"$r/c\" \"$t\" || d \"cannot create the task directory $t\"; \
         e=; while IFS=' ' read -r k m n p; do \
         case $k in E) e=1; break;; F) ;; *) d \"unexpected entry '$k' in the staged stream\";; esac; \
         h=${{p#c/}}; \
         case $h in ''|*[!0-9a-f]*) d \"unexpected cache entry $p\";; esac; \
         [ \"$p\" = \"c/$h\" ] || d \"unexpected cache entry $p\"; \
         case $n in ''|*[!0-9]*) d \"bad length for $p\";; esac; \
         case $m in ''|*[!0-7]*) d \"bad mode for $p\";; esac; \
         f=\"$r/c/.$h.$$\"; head -c \"$n\" > \"$f\" || d \"cannot write $f\"; \
         [ \"$(($(wc -c < \"$f\")))\" -eq \"$n\" ] || d \"the staged stream ended inside $p\"; \
         chmod \"$m\" \"$f\"; mv -f \"$f\" \"$r/c/$h\" || d \"cannot write $r/c/$h\"; \
         done; [ -n \"$e\" ] || d \"the staged stream ended before its end marker\"; \
         while IFS= read -r l; do \
         h=${{l%% *}}; l=${{l#* }}; m=${{l%% *}}; p=${{l#* }}; \
         case /$p/ in //*|*/../*|*/./*) d \"refusing to stage '$p': not a path inside the task directory\";; esac; \
         case $p in */*) mkdir -p \"$t/${{p%/*}}\" || d \"cannot create the directory of $p\";; esac; \
         if [ \"$h\" = - ]; then mkdir -p \"$t/$p\" && chmod \"$m\" \"$t/$p\" || d \"cannot create $p\"; continue; fi; \
         if [ -e \"$t/$p\" ] || [ -L \"$t/$p\" ]; then d \"$p is staged twice\"; fi; \
         ln \"$r/c/$h\" \"$t/$p\" 2>/dev/null || cp \"$r/c/$h\" \"$t/$p\" || d \"cannot place $p\"; \
         done; exit 0",
        run = run_dir(run_id),
        task = quote(task_dir.as_bytes()),
    )
}

/// Prints `paths` (relative to the task directory) as frames, then `E`.
pub fn pack(run_id: &str, task_dir: &str, paths: &[String]) -> String {
    let quoted: Vec<String> = paths
        .iter()
        .map(|p| quote(p.as_bytes()).into_owned())
        .collect();
    format!(
        "cd {run}/{task} || exit 3; {DIE}\
         o() {{ stat -c %a -- \"$1\" 2>/dev/null || stat -f %Lp -- \"$1\"; }}; \
         e() {{ case $1 in *'\n'*) d \"a returned name holds a newline: $1\";; esac; \
         if [ -L \"$1\" ]; then d \"$1: is a symbolic link; only regular files and directories are returned\"; \
         elif [ -d \"$1\" ]; then printf 'D %s 0 %s\\n' \"$(o \"$1\")\" \"$1\"; \
         for x in \"$1\"/* \"$1\"/.[!.]* \"$1\"/..?*; do if [ -e \"$x\" ] || [ -L \"$x\" ]; then e \"$x\"; fi; done; \
         elif [ -f \"$1\" ]; then n=$(($(wc -c < \"$1\"))); printf 'F %s %s %s\\n' \"$(o \"$1\")\" \"$n\" \"$1\"; \
         cat -- \"$1\" || d \"cannot read $1\"; \
         elif [ -e \"$1\" ]; then d \"$1: not a regular file or directory\"; \
         else d \"$1: no such file or directory (the task did not make it)\"; fi; }}; \
         for p in {list}; do e \"$p\"; done; echo E",
        run = run_dir(run_id),
        task = quote(task_dir.as_bytes()),
        list = quoted.join(" "),
    )
}

/// Removes one attempt's task directory.
pub fn remove_task(run_id: &str, task_dir: &str) -> String {
    format!(
        "rm -rf -- {}/{}",
        run_dir(run_id),
        quote(task_dir.as_bytes())
    )
}

/// Removes the run's directory, and the directories above it if they are left empty.
pub fn remove_run(run_id: &str) -> String {
    format!(
        "rm -rf -- {}; rmdir \"$HOME\"/.cache/dts/runs \"$HOME\"/.cache/dts \"$HOME\"/.cache 2>/dev/null; exit 0",
        run_dir(run_id)
    )
}
