//! Command and key templates: placeholders, parsed once, rendered per task.
//!
//! | placeholder            | value                                              |
//! | ---------------------- | -------------------------------------------------- |
//! | `{}` `{item}`          | the item                                           |
//! | `{.}` `{item/.}`       | the item without its extension (`a/b.tar.gz` → `a/b.tar`) |
//! | `{/}` `{item/}`        | the item's basename                                |
//! | `{//}` `{item//}`      | the item's dirname (`.` when it has no `/`)        |
//! | `{/.}`                 | the basename without its extension                 |
//! | `{#}`                  | the task's 1-based sequence number                 |
//! | `{index}`              | the task's array index                             |
//! | `{host}`               | the host name                                      |
//! | `{NAME}`               | the value of matrix axis NAME (bound with [`Template::with_params`]) |
//!
//! The path forms follow GNU parallel: the extension is the last `.` of the basename onward
//! (`dir.d/file` keeps its name, `.bashrc` loses all of it) and the dirname is POSIX
//! `dirname`. Anything else in braces (`awk '{print $1}'`, `${HOME}`, `{foo}`) is plain
//! text, never an error.
//!
//! Three kinds of template differ in how values are inserted:
//! - [`Template::shell`]: a shell command line; each value is inserted shell-quoted, so an
//!   item can never inject a command. Do not put quotes around placeholders yourself.
//! - [`Template::argv`]: an exact argv; placeholders in a word are replaced by raw values and
//!   then the whole word is quoted, so the host runs exactly those words.
//! - [`Template::key`]: a consistent-hash key; [`Template::render_key`] inserts raw bytes.

use std::fmt::Write as _;
use std::io;

use super::array::SpecError;
use super::quote::quote;

/// What a task fills placeholders with.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub item: &'a [u8],
    pub seq: u32,
    pub index: u64,
    pub host: &'a str,
    /// The task's matrix values, one per axis in the order the template was bound with.
    pub params: &'a [&'a str],
}

/// A parsed command (or key) template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    source: String,
    body: Body,
    uses_host: bool,
    spec: TemplateSpec,
    /// Matrix axis names recognised as `{NAME}` placeholders.
    params: Vec<String>,
}

/// How a template was written, to store it and build it again (a run's spec is saved so a
/// detached coordinator or `dts retry` can rebuild the job).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TemplateSpec {
    Shell(String),
    Argv(Vec<String>),
    Key(String),
}

impl TemplateSpec {
    pub fn build(&self) -> Result<Template, SpecError> {
        match self {
            TemplateSpec::Shell(line) => Template::shell(line),
            TemplateSpec::Argv(words) => Template::argv(words),
            TemplateSpec::Key(text) => Template::key(text),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Body {
    /// A shell line or a key: values quoted by `render`, raw in `render_key`.
    Line(Vec<Piece>),
    /// Exact argv words.
    Argv(Vec<Word>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Word {
    pieces: Vec<Piece>,
    /// The quoted word, when it has no placeholder and so never changes.
    fixed: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Value(Value),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value {
    Item(PathPart),
    Seq,
    Index,
    Host,
    /// A matrix axis, by position.
    Param(usize),
}

/// Which part of the item a placeholder takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathPart {
    Whole,
    NoExt,
    Basename,
    Dirname,
    BasenameNoExt,
}

impl Template {
    /// One shell command line; substituted values are quoted.
    pub fn shell(line: &str) -> Result<Template, SpecError> {
        if line.trim().is_empty() {
            return Err(SpecError::new(0, "empty command"));
        }
        check_no_nul(line, 0)?;
        Ok(Template::line(line, TemplateSpec::Shell(line.into()), &[]))
    }

    /// An exact argv: each word is quoted as a whole after substitution.
    pub fn argv(words: &[String]) -> Result<Template, SpecError> {
        if words.is_empty() {
            return Err(SpecError::new(0, "empty command"));
        }
        let source = display_words(words);
        let mut offset = 0;
        for word in words {
            check_no_nul(word, offset)?;
            offset += word.len() + 1;
        }
        Ok(Template::words(words, source, &[]))
    }

    fn words(words: &[String], source: String, params: &[String]) -> Template {
        let spec = TemplateSpec::Argv(words.to_vec());
        let words: Vec<Word> = words.iter().map(|w| Word::parse(w, params)).collect();
        let uses_host = words.iter().any(|w| uses_host(&w.pieces));
        Template {
            source,
            body: Body::Argv(words),
            uses_host,
            spec,
            params: params.to_vec(),
        }
    }

    /// The same template with `{NAME}` placeholders for these matrix axes (in order: a
    /// task's [`Context::params`] follow it). Other braces stay plain text.
    pub fn with_params(self, names: &[String]) -> Template {
        if names == self.params {
            return self;
        }
        match &self.spec {
            TemplateSpec::Argv(words) => Template::words(words, self.source.clone(), names),
            TemplateSpec::Shell(text) | TemplateSpec::Key(text) => {
                Template::line(text, self.spec.clone(), names)
            }
        }
    }

    /// A `--key` template: values substituted as they are, nothing quoted.
    pub fn key(text: &str) -> Result<Template, SpecError> {
        if text.is_empty() {
            return Err(SpecError::new(0, "empty key"));
        }
        Ok(Template::line(text, TemplateSpec::Key(text.into()), &[]))
    }

    fn line(text: &str, spec: TemplateSpec, params: &[String]) -> Template {
        let pieces = parse_pieces(text, params);
        Template {
            source: text.into(),
            uses_host: uses_host(&pieces),
            body: Body::Line(pieces),
            spec,
            params: params.to_vec(),
        }
    }

    /// How the template was written.
    pub fn spec(&self) -> &TemplateSpec {
        &self.spec
    }

    /// The template as written, for display; argv words are shown quoted.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The command line for one task.
    pub fn render(&self, ctx: &Context<'_>) -> String {
        let mut out = String::with_capacity(self.source.len() + ctx.item.len() + 16);
        match &self.body {
            Body::Line(pieces) => {
                for piece in pieces {
                    match piece {
                        Piece::Text(text) => out.push_str(text),
                        Piece::Value(value) => value.write_quoted(ctx, &mut out),
                    }
                }
            }
            Body::Argv(words) => {
                let mut raw = Vec::new();
                for (i, word) in words.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    word.write_quoted(ctx, &mut raw, &mut out);
                }
            }
        }
        out
    }

    /// The raw bytes of a key template for one task (for other templates: their text with
    /// raw values, argv words joined by spaces).
    pub fn render_key(&self, ctx: &Context<'_>) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.source.len() + ctx.item.len());
        match &self.body {
            Body::Line(pieces) => write_raw(pieces, ctx, &mut out),
            Body::Argv(words) => {
                for (i, word) in words.iter().enumerate() {
                    if i > 0 {
                        out.push(b' ');
                    }
                    write_raw(&word.pieces, ctx, &mut out);
                }
            }
        }
        out
    }

    /// Whether `{host}` appears (the command can only be rendered once a host is chosen).
    pub fn uses_host(&self) -> bool {
        self.uses_host
    }

    /// Whether any placeholder appears.
    pub fn has_placeholder(&self) -> bool {
        let any = |pieces: &[Piece]| pieces.iter().any(|p| matches!(p, Piece::Value(_)));
        match &self.body {
            Body::Line(pieces) => any(pieces),
            Body::Argv(words) => words.iter().any(|w| any(&w.pieces)),
        }
    }

    /// GNU parallel's rule for a command without any placeholder: the item is appended,
    /// quoted (` {}` after a shell line, one more word `{}` after an argv). Other commands
    /// and keys are returned as they are.
    pub fn with_item_appended(self) -> Template {
        if self.has_placeholder() {
            return self;
        }
        let appended = match &self.spec {
            TemplateSpec::Shell(line) => Template::shell(&format!("{line} {{}}")),
            TemplateSpec::Argv(words) => {
                Template::argv(&[words.as_slice(), &["{}".to_string()]].concat())
            }
            TemplateSpec::Key(_) => return self,
        };
        // The template parsed before; one more placeholder cannot make it invalid.
        match appended {
            Ok(appended) => appended.with_params(&self.params),
            Err(_) => self,
        }
    }
}

impl Word {
    fn parse(word: &str, params: &[String]) -> Word {
        let pieces = parse_pieces(word, params);
        let has_value = pieces.iter().any(|p| matches!(p, Piece::Value(_)));
        let fixed = (!has_value).then(|| quote(word.as_bytes()).into_owned());
        Word { pieces, fixed }
    }

    /// Appends the word, quoted; `raw` is scratch space reused across words.
    fn write_quoted(&self, ctx: &Context<'_>, raw: &mut Vec<u8>, out: &mut String) {
        if let Some(fixed) = &self.fixed {
            out.push_str(fixed);
            return;
        }
        raw.clear();
        write_raw(&self.pieces, ctx, raw);
        out.push_str(&quote(raw));
    }
}

impl Value {
    /// Appends the value shell-quoted (numbers need no quotes).
    fn write_quoted(self, ctx: &Context<'_>, out: &mut String) {
        match self {
            Value::Item(part) => out.push_str(&quote(part.of(ctx.item))),
            Value::Host => out.push_str(&quote(ctx.host.as_bytes())),
            // Writing to a String cannot fail.
            Value::Seq => drop(write!(out, "{}", ctx.seq)),
            Value::Index => drop(write!(out, "{}", ctx.index)),
            Value::Param(i) => out.push_str(&quote(param(ctx, i).as_bytes())),
        }
    }

    fn write_raw(self, ctx: &Context<'_>, out: &mut Vec<u8>) {
        match self {
            Value::Item(part) => out.extend_from_slice(part.of(ctx.item)),
            Value::Host => out.extend_from_slice(ctx.host.as_bytes()),
            // Writing to a Vec cannot fail.
            Value::Seq => drop(io::Write::write_fmt(out, format_args!("{}", ctx.seq))),
            Value::Index => drop(io::Write::write_fmt(out, format_args!("{}", ctx.index))),
            Value::Param(i) => out.extend_from_slice(param(ctx, i).as_bytes()),
        }
    }
}

/// Matrix value `i` of the task (empty if the context has fewer).
fn param<'a>(ctx: &Context<'a>, i: usize) -> &'a str {
    ctx.params.get(i).copied().unwrap_or("")
}

fn write_raw(pieces: &[Piece], ctx: &Context<'_>, out: &mut Vec<u8>) {
    for piece in pieces {
        match piece {
            Piece::Text(text) => out.extend_from_slice(text.as_bytes()),
            Piece::Value(value) => value.write_raw(ctx, out),
        }
    }
}

impl PathPart {
    fn of(self, item: &[u8]) -> &[u8] {
        match self {
            PathPart::Whole => item,
            PathPart::NoExt => strip_extension(item),
            PathPart::Basename => basename(item),
            PathPart::Dirname => dirname(item),
            PathPart::BasenameNoExt => strip_extension(basename(item)),
        }
    }
}

/// Everything after the last `/`.
fn basename(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(slash) => &path[slash + 1..],
        None => path,
    }
}

/// `path` without the last `.` of its basename and what follows it.
fn strip_extension(path: &[u8]) -> &[u8] {
    let base_start = path.len() - basename(path).len();
    match path[base_start..].iter().rposition(|&b| b == b'.') {
        Some(dot) => &path[..base_start + dot],
        None => path,
    }
}

/// POSIX `dirname`: `a/b/` → `a`, `/x` → `/`, `x` → `.`.
fn dirname(path: &[u8]) -> &[u8] {
    let trimmed = trim_trailing_slashes(path);
    if trimmed.is_empty() {
        // Empty, or only slashes.
        return if path.is_empty() { b"." } else { &path[..1] };
    }
    match trimmed.iter().rposition(|&b| b == b'/') {
        None => b".",
        Some(slash) => match trim_trailing_slashes(&trimmed[..slash]) {
            [] => &path[..1],
            dir => dir,
        },
    }
}

fn trim_trailing_slashes(path: &[u8]) -> &[u8] {
    let end = path.iter().rposition(|&b| b != b'/').map_or(0, |i| i + 1);
    &path[..end]
}

/// Splits `text` into literal text and recognised placeholders.
fn parse_pieces(text: &str, params: &[String]) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut literal_start = 0;
    let mut pos = 0;
    while let Some(found) = text[pos..].find('{') {
        let open = pos + found;
        match placeholder_at(&text[open..], params) {
            Some((value, len)) => {
                push_text(&mut pieces, &text[literal_start..open]);
                pieces.push(Piece::Value(value));
                pos = open + len;
                literal_start = pos;
            }
            None => pos = open + 1,
        }
    }
    push_text(&mut pieces, &text[literal_start..]);
    pieces
}

fn push_text(pieces: &mut Vec<Piece>, text: &str) {
    if !text.is_empty() {
        pieces.push(Piece::Text(text.into()));
    }
}

/// The placeholder `s` starts with (`s` starts with `{`) and its length in bytes.
fn placeholder_at(s: &str, params: &[String]) -> Option<(Value, usize)> {
    let close = s[1..].find(['{', '}'])? + 1;
    if s.as_bytes()[close] != b'}' {
        return None;
    }
    let value = match &s[1..close] {
        "" | "item" => Value::Item(PathPart::Whole),
        "." | "item/." => Value::Item(PathPart::NoExt),
        "/" | "item/" => Value::Item(PathPart::Basename),
        "//" | "item//" => Value::Item(PathPart::Dirname),
        "/." => Value::Item(PathPart::BasenameNoExt),
        "#" => Value::Seq,
        "index" => Value::Index,
        "host" => Value::Host,
        name => Value::Param(params.iter().position(|p| p == name)?),
    };
    Some((value, close + 1))
}

fn uses_host(pieces: &[Piece]) -> bool {
    pieces.contains(&Piece::Value(Value::Host))
}

fn check_no_nul(text: &str, base_offset: usize) -> Result<(), SpecError> {
    match text.find('\0') {
        Some(i) => Err(SpecError::new(
            base_offset + i,
            "a command cannot contain a NUL character",
        )),
        None => Ok(()),
    }
}

/// Argv words as a shell would take them back: each quoted, joined by spaces.
fn display_words(words: &[String]) -> String {
    words
        .iter()
        .map(|w| quote(w.as_bytes()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn ctx(item: &[u8]) -> Context<'_> {
        Context {
            item,
            seq: 7,
            index: 42,
            host: "node01",
            params: &[],
        }
    }

    fn shell(line: &str, item: &str) -> String {
        Template::shell(line).unwrap().render(&ctx(item.as_bytes()))
    }

    fn argv(words: &[&str], item: &str) -> String {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        Template::argv(&words)
            .unwrap()
            .render(&ctx(item.as_bytes()))
    }

    fn key(text: &str, item: &[u8]) -> Vec<u8> {
        Template::key(text).unwrap().render_key(&ctx(item))
    }

    /// What `/bin/sh -c command` prints.
    fn run_sh(command: &str) -> Vec<u8> {
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(command)
            .output()
            .unwrap();
        assert!(out.status.success(), "{command:?}: {out:?}");
        out.stdout
    }

    #[test]
    fn item_placeholders() {
        assert_eq!(shell("echo {}", "a"), "echo a");
        assert_eq!(shell("echo {item}", "a b"), "echo 'a b'");
        assert_eq!(shell("echo {} {}", "x"), "echo x x");
        assert_eq!(shell("{}", "ls"), "ls");
    }

    #[test]
    fn number_and_host_placeholders() {
        assert_eq!(shell("run {#} {index} {host}", "x"), "run 7 42 node01");
        let c = Context {
            host: "odd host",
            ..ctx(b"")
        };
        assert_eq!(Template::shell("{host}").unwrap().render(&c), "'odd host'");
    }

    #[test]
    fn path_placeholders() {
        let item = "dir.d/sub/photo.tar.gz";
        assert_eq!(shell("{.}", item), "dir.d/sub/photo.tar");
        assert_eq!(shell("{item/.}", item), "dir.d/sub/photo.tar");
        assert_eq!(shell("{/}", item), "photo.tar.gz");
        assert_eq!(shell("{item/}", item), "photo.tar.gz");
        assert_eq!(shell("{//}", item), "dir.d/sub");
        assert_eq!(shell("{item//}", item), "dir.d/sub");
        assert_eq!(shell("{/.}", item), "photo.tar");
        assert_eq!(shell("{.}", "dir.d/file"), "dir.d/file");
        assert_eq!(shell("out/{/.}.png", "in/my pic.jpg"), "out/'my pic'.png");
    }

    /// The same table GNU parallel 20221122 prints for these inputs.
    #[test]
    fn path_placeholders_match_gnu_parallel() {
        let cases: &[[&str; 5]] = &[
            // item, {.}, {/}, {//}, {/.}
            [".bashrc", "", ".bashrc", ".", ""],
            ["a/.bashrc", "a/", ".bashrc", "a", ""],
            ["file.", "file", "file.", ".", "file"],
            ["dir.d/file", "dir.d/file", "file", "dir.d", "file"],
            ["a/b/", "a/b/", "", "a", ""],
            ["/file", "/file", "file", "/", "file"],
            ["file", "file", "file", ".", "file"],
            ["a/b.tar.gz", "a/b.tar", "b.tar.gz", "a", "b.tar"],
            ["a//b", "a//b", "b", "a", "b"],
            ["", "", "", ".", ""],
            ["/", "/", "", "/", ""],
        ];
        for [item, no_ext, base, dir, base_no_ext] in cases {
            let item = item.as_bytes();
            assert_eq!(key("{.}", item), no_ext.as_bytes(), "{{.}} of {item:?}");
            assert_eq!(key("{/}", item), base.as_bytes(), "{{/}} of {item:?}");
            assert_eq!(key("{//}", item), dir.as_bytes(), "{{//}} of {item:?}");
            assert_eq!(
                key("{/.}", item),
                base_no_ext.as_bytes(),
                "{{/.}} of {item:?}"
            );
        }
    }

    #[test]
    fn other_braces_are_literal() {
        let awk = "awk '{print $1}' {}";
        assert_eq!(shell(awk, "f"), "awk '{print $1}' f");
        assert_eq!(
            shell("echo ${HOME} {foo} { } {item/x}", "f"),
            "echo ${HOME} {foo} { } {item/x}"
        );
        assert_eq!(shell("{{}}", "f"), "{f}");
        assert_eq!(shell("a { b {", "f"), "a { b {");
        assert_eq!(shell("}{}{", "f"), "}f{");
        assert_eq!(shell("{item", "f"), "{item");
        assert_eq!(shell("é{}é", "f"), "éfé");
    }

    #[test]
    fn shell_values_are_quoted() {
        assert_eq!(
            shell("gzip -c {} > {}.gz", "a b"),
            "gzip -c 'a b' > 'a b'.gz"
        );
        assert_eq!(shell("echo {}", "it's"), r"echo 'it'\''s'");
        assert_eq!(shell("echo {}", ""), "echo ''");
    }

    #[test]
    fn argv_words_are_quoted_whole() {
        assert_eq!(
            argv(&["printf", "%s\\n", "{}"], "a b"),
            r"printf '%s\n' 'a b'"
        );
        assert_eq!(
            argv(&["cp", "{}", "out/{/.}.png"], "in/x y.jpg"),
            "cp 'in/x y.jpg' 'out/x y.png'"
        );
        assert_eq!(
            argv(&["echo", "{#}-{index}@{host}"], "x"),
            "echo 7-42@node01"
        );
        assert_eq!(argv(&["echo", "a b", ""], "x"), "echo 'a b' ''");
    }

    #[test]
    fn argv_runs_exactly_those_words() {
        let words = ["printf", "[%s]\\n", "{}", "{/}", "$HOME", "*"];
        let command = argv(&words, "d/it's a $(x)");
        assert_eq!(
            run_sh(&command),
            b"[d/it's a $(x)]\n[it's a $(x)]\n[$HOME]\n[*]\n"
        );
    }

    #[test]
    fn items_cannot_inject_commands() {
        let marker = std::env::temp_dir().join(format!("dts-pwned-{}", std::process::id()));
        let marker = marker.to_str().unwrap();
        let items = [
            format!("$(touch {marker})"),
            format!("`touch {marker}`"),
            format!("'; touch {marker}; '"),
            format!("\"; touch {marker}; \""),
            format!("x\ntouch {marker}"),
            "`id`".to_string(),
            "'; reboot; '".to_string(),
            "a && b || c | d & e ; f".to_string(),
            "$HOME ~ * ?".to_string(),
        ];
        let shell_line = Template::shell("printf '%s\\n' {}").unwrap();
        let words = ["printf".to_string(), "%s\\n".to_string(), "{}".to_string()];
        let argv_form = Template::argv(&words).unwrap();
        for item in &items {
            let expected = format!("{item}\n").into_bytes();
            for template in [&shell_line, &argv_form] {
                let command = template.render(&ctx(item.as_bytes()));
                assert_eq!(run_sh(&command), expected, "{command}");
            }
        }
        assert!(
            !std::path::Path::new(marker).exists(),
            "an item ran a command"
        );
    }

    #[test]
    fn invalid_utf8_items_survive_the_shell() {
        let item = b"caf\xe9 \xff\n";
        let command = Template::shell("printf %s {}").unwrap().render(&ctx(item));
        assert_eq!(run_sh(&command), item);
    }

    #[test]
    fn keys_are_raw() {
        assert_eq!(key("{}", b"a b'\xff"), b"a b'\xff");
        assert_eq!(key("{host}/{/.}#{#}:{index}", b"d/f.txt"), b"node01/f#7:42");
        assert_eq!(key("{foo}", b"x"), b"{foo}");
    }

    #[test]
    fn render_key_of_commands_is_unquoted() {
        let t = Template::shell("echo {}").unwrap();
        assert_eq!(t.render_key(&ctx(b"a b")), b"echo a b");
        let words = ["echo".to_string(), "x {}".to_string()];
        let t = Template::argv(&words).unwrap();
        assert_eq!(t.render_key(&ctx(b"a")), b"echo x a");
    }

    #[test]
    fn uses_host() {
        assert!(Template::shell("ssh {host} true").unwrap().uses_host());
        assert!(!Template::shell("echo {} {hostname}").unwrap().uses_host());
        let words = ["echo".to_string(), "on-{host}".to_string()];
        assert!(Template::argv(&words).unwrap().uses_host());
        assert!(Template::key("{host}").unwrap().uses_host());
    }

    #[test]
    fn source_is_kept_for_display() {
        assert_eq!(Template::shell("echo {}").unwrap().source(), "echo {}");
        let words = ["printf".to_string(), "%s\\n".to_string(), "{}".to_string()];
        assert_eq!(
            Template::argv(&words).unwrap().source(),
            r"printf '%s\n' '{}'"
        );
    }

    #[test]
    fn empty_templates_are_errors() {
        assert_eq!(Template::shell("  ").unwrap_err().message, "empty command");
        assert_eq!(Template::argv(&[]).unwrap_err().message, "empty command");
        assert_eq!(Template::key("").unwrap_err().message, "empty key");
    }

    fn names(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn matrix_placeholders_are_quoted_values() {
        let t = Template::shell("train --lr {lr} --d {depth} {other}")
            .unwrap()
            .with_params(&names(&["lr", "depth"]));
        let c = Context {
            params: &["$(touch pwned)", "it's 3"],
            ..ctx(b"")
        };
        assert_eq!(
            t.render(&c),
            r"train --lr '$(touch pwned)' --d 'it'\''s 3' {other}"
        );
        let words = [
            "printf".to_string(),
            "[%s]".to_string(),
            "x={lr}".to_string(),
        ];
        let t = Template::argv(&words).unwrap().with_params(&names(&["lr"]));
        assert_eq!(run_sh(&t.render(&c)), b"[x=$(touch pwned)]");
        let key = Template::key("{lr}/{}")
            .unwrap()
            .with_params(&names(&["lr"]));
        assert_eq!(key.render_key(&c), b"$(touch pwned)/");
    }

    #[test]
    fn a_matrix_placeholder_counts_as_a_placeholder() {
        let unbound = Template::shell("echo {lr}").unwrap();
        assert!(!unbound.has_placeholder());
        assert_eq!(unbound.render(&ctx(b"x")), "echo {lr}");
        let bound = Template::shell("echo {lr}")
            .unwrap()
            .with_params(&names(&["lr"]));
        assert!(bound.has_placeholder());
        assert_eq!(bound.with_item_appended().source(), "echo {lr}");
        let appended = Template::shell("echo")
            .unwrap()
            .with_params(&names(&["lr"]))
            .with_item_appended();
        assert_eq!(appended.source(), "echo {}");
    }

    #[test]
    fn nul_in_a_command_is_an_error() {
        let err = Template::shell("echo a\0b").unwrap_err();
        assert_eq!(
            err,
            SpecError::new(6, "a command cannot contain a NUL character")
        );
        let words = ["echo".to_string(), "a\0".to_string()];
        assert_eq!(Template::argv(&words).unwrap_err().offset, 6);
    }
}
