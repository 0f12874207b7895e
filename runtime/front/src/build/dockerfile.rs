//! The Dockerfile parser of `wrun build`: docker's syntax read into instructions, each with its
//! line number, before anything is built. What it reads:
//!
//! - parser directives at the very top (`# escape=` with `\` or a backtick; `# syntax=` is noted
//!   and ignored: wrun has one builder), comments (`#` first on a line), blank lines;
//! - line continuations (the escape character last on a line), comment lines inside a
//!   continued instruction skipped, as docker does;
//! - every instruction of docker's reference, in shell and exec (JSON) form where it has both;
//!   flags (`--from=`, `--chown=`, `--chmod=`, `--platform=`, HEALTHCHECK's `--interval=` ...)
//!   are kept as `(name, value)`;
//! - `ENV`/`LABEL`/`ARG` key-value lists with quotes and escapes, and the legacy `ENV key value`.
//!
//! Variable substitution (`$VAR`, `${VAR:-word}`, `${VAR:+word}`) is `expand`, applied by the
//! builder to the instructions docker applies it to, with the ARG and ENV values of the moment.
//! A malformed file is one error naming the line and the cause; nothing is built from it.

use std::fmt;

/// A command in shell form (run by the SHELL) or exec form (argv).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Shell(String),
    Exec(Vec<String>),
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    From {
        image: String,
        alias: Option<String>,
        platform: Option<String>,
    },
    Run {
        command: Command,
        flags: Vec<(String, String)>,
    },
    Cmd(Command),
    Entrypoint(Command),
    Shell(Vec<String>),
    /// COPY (add: false) or ADD: sources then the destination, with flags.
    Copy {
        add: bool,
        sources: Vec<String>,
        dest: String,
        flags: Vec<(String, String)>,
    },
    Env(Vec<(String, String)>),
    Arg {
        name: String,
        default: Option<String>,
    },
    Label(Vec<(String, String)>),
    Maintainer(String),
    Workdir(String),
    User(String),
    Expose(Vec<String>),
    Volume(Vec<String>),
    StopSignal(String),
    /// None: HEALTHCHECK NONE.
    Healthcheck {
        command: Option<Command>,
        flags: Vec<(String, String)>,
    },
    /// The instruction text, stored for images built FROM this one.
    Onbuild(String),
}

/// An instruction and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The line the instruction starts on (1-based).
    pub line: usize,
    pub instruction: Instruction,
    /// The instruction as written (continuations joined), for history's `created_by`.
    pub text: String,
}

/// A parse error: the line and the cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub msg: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Dockerfile:{}: {}", self.line, self.msg)
    }
}

impl std::error::Error for ParseError {}

/// What `parse` found.
#[derive(Debug, Clone, Default)]
pub struct Dockerfile {
    pub steps: Vec<Step>,
    /// Warnings (an ignored `# syntax=` directive).
    pub warnings: Vec<String>,
    /// The escape character (`\\`, or a backtick by `# escape=`), for `expand`.
    pub escape: char,
}

fn err(line: usize, msg: impl Into<String>) -> ParseError {
    ParseError { line, msg: msg.into() }
}

/// The parser directives at the top: the escape character, and warnings.
fn directives(lines: &[&str], warnings: &mut Vec<String>) -> Result<(char, usize), ParseError> {
    let mut escape = '\\';
    let mut n = 0;
    for (i, l) in lines.iter().enumerate() {
        let Some(rest) = l.trim_start().strip_prefix('#') else {
            break;
        };
        let Some((k, v)) = rest.split_once('=') else { break };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
        if k.contains(char::is_whitespace) || k.is_empty() {
            break;
        }
        match k.as_str() {
            "escape" => {
                escape = match v {
                    "\\" => '\\',
                    "`" => '`',
                    _ => return Err(err(i + 1, format!("escape directive {v:?}: only \\ or `"))),
                }
            }
            "syntax" => warnings.push(format!(
                "Dockerfile:{}: # syntax={v} ignored: wrun builds with its own builder",
                i + 1
            )),
            // docker ignores directives it does not know, and so does wrun.
            _ => {}
        }
        n = i + 1;
    }
    Ok((escape, n))
}

/// Split an instruction's arguments at unquoted white space, keeping quotes and escapes as
/// written (for flags).
fn leading_flags(mut rest: &str) -> (Vec<(String, String)>, &str) {
    let mut flags = Vec::new();
    loop {
        let t = rest.trim_start();
        let Some(f) = t.strip_prefix("--") else {
            return (flags, t);
        };
        let end = f.find(char::is_whitespace).unwrap_or(f.len());
        let (word, after) = f.split_at(end);
        let (k, v) = word.split_once('=').unwrap_or((word, ""));
        flags.push((k.to_string(), v.to_string()));
        rest = after;
    }
}

/// The exec form, when `s` is a JSON array of strings.
fn exec_form(s: &str) -> Option<Vec<String>> {
    let t = s.trim();
    if !t.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(t).ok()
}

fn command(s: &str) -> Command {
    match exec_form(s) {
        Some(v) => Command::Exec(v),
        None => Command::Shell(s.trim().to_string()),
    }
}

/// Words of `s` with docker's quoting: double and single quotes, and the escape character.
fn words(s: &str, escape: char, line: usize) -> Result<Vec<String>, ParseError> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (Some(q), c) if c == q => quote = None,
            (q, c) if c == escape && q != Some('\'') => {
                in_word = true;
                match chars.next() {
                    Some(n) => cur.push(n),
                    None => cur.push(c),
                }
            }
            (_, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err(err(line, "unterminated quote"));
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// `KEY=VALUE ...` (or, with `legacy`, `KEY VALUE` when there is no `=`).
fn pairs(s: &str, escape: char, line: usize, what: &str, legacy: bool) -> Result<Vec<(String, String)>, ParseError> {
    let ws = words(s, escape, line)?;
    if ws.is_empty() {
        return Err(err(line, format!("{what} needs at least one KEY=VALUE")));
    }
    if legacy && !ws[0].contains('=') {
        // ENV key value with spaces: everything after the key, as written.
        let t = s.trim_start();
        let end = t.find(char::is_whitespace).unwrap_or(t.len());
        let value = t[end..].trim().to_string();
        if value.is_empty() {
            return Err(err(line, format!("{what} {}: no value", &t[..end])));
        }
        return Ok(vec![(t[..end].to_string(), value)]);
    }
    ws.into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(err(line, format!("{what}: {w:?} is not KEY=VALUE"))),
        })
        .collect()
}

fn one(line: usize, what: &str, args: &str) -> Result<String, ParseError> {
    let a = args.trim();
    if a.is_empty() {
        return Err(err(line, format!("{what} needs an argument")));
    }
    Ok(a.to_string())
}

fn instruction(word: &str, args: &str, escape: char, line: usize) -> Result<Instruction, ParseError> {
    let upper = word.to_ascii_uppercase();
    Ok(match upper.as_str() {
        "FROM" => {
            let (flags, rest) = leading_flags(args);
            let platform = flags.iter().find(|(k, _)| k == "platform").map(|(_, v)| v.clone());
            if let Some((k, _)) = flags.iter().find(|(k, _)| k != "platform") {
                return Err(err(line, format!("FROM: unknown flag --{k}")));
            }
            let ws = words(rest, escape, line)?;
            match ws.as_slice() {
                [image] => Instruction::From {
                    image: image.clone(),
                    alias: None,
                    platform,
                },
                [image, as_, alias] if as_.eq_ignore_ascii_case("as") => Instruction::From {
                    image: image.clone(),
                    alias: Some(alias.to_ascii_lowercase()),
                    platform,
                },
                _ => return Err(err(line, "FROM takes IMAGE [AS NAME]")),
            }
        }
        "RUN" => {
            let (flags, rest) = leading_flags(args);
            if rest.trim().is_empty() {
                return Err(err(line, "RUN needs a command"));
            }
            Instruction::Run {
                command: command(rest),
                flags,
            }
        }
        "CMD" => Instruction::Cmd(command(&one(line, "CMD", args)?)),
        "ENTRYPOINT" => Instruction::Entrypoint(command(&one(line, "ENTRYPOINT", args)?)),
        "SHELL" => match exec_form(args) {
            Some(v) if !v.is_empty() => Instruction::Shell(v),
            _ => return Err(err(line, "SHELL takes a JSON array, e.g. [\"/bin/sh\", \"-c\"]")),
        },
        "COPY" | "ADD" => {
            let (flags, rest) = leading_flags(args);
            let known: &[&str] = if upper == "COPY" {
                &["from", "chown", "chmod", "link", "parents", "exclude"]
            } else {
                &["chown", "chmod", "link", "checksum", "keep-git-dir", "exclude"]
            };
            if let Some((k, _)) = flags.iter().find(|(k, _)| !known.contains(&k.as_str())) {
                return Err(err(line, format!("{upper}: unknown flag --{k}")));
            }
            let mut ws = match exec_form(rest) {
                Some(v) => v,
                None => words(rest, escape, line)?,
            };
            if ws.len() < 2 {
                return Err(err(
                    line,
                    format!("{upper} needs at least one source and a destination"),
                ));
            }
            let dest = ws.pop().unwrap_or_default();
            Instruction::Copy {
                add: upper == "ADD",
                sources: ws,
                dest,
                flags,
            }
        }
        "ENV" => Instruction::Env(pairs(args, escape, line, "ENV", true)?),
        "LABEL" => Instruction::Label(pairs(args, escape, line, "LABEL", false)?),
        "ARG" => {
            let ws = words(args, escape, line)?;
            match ws.as_slice() {
                [a] => match a.split_once('=') {
                    Some((k, v)) if !k.is_empty() => Instruction::Arg {
                        name: k.into(),
                        default: Some(v.into()),
                    },
                    None if !a.is_empty() => Instruction::Arg {
                        name: a.clone(),
                        default: None,
                    },
                    _ => return Err(err(line, format!("ARG {a:?}: not NAME[=DEFAULT]"))),
                },
                _ => return Err(err(line, "ARG takes one NAME[=DEFAULT]")),
            }
        }
        "MAINTAINER" => Instruction::Maintainer(one(line, "MAINTAINER", args)?),
        "WORKDIR" => Instruction::Workdir(one(line, "WORKDIR", args)?),
        "USER" => Instruction::User(one(line, "USER", args)?),
        "STOPSIGNAL" => Instruction::StopSignal(one(line, "STOPSIGNAL", args)?),
        "EXPOSE" => {
            let ws = words(args, escape, line)?;
            if ws.is_empty() {
                return Err(err(line, "EXPOSE needs a port"));
            }
            Instruction::Expose(ws)
        }
        "VOLUME" => {
            let v = match exec_form(args) {
                Some(v) => v,
                None => words(args, escape, line)?,
            };
            if v.is_empty() || v.iter().any(|p| p.is_empty()) {
                return Err(err(line, "VOLUME needs a path"));
            }
            Instruction::Volume(v)
        }
        "HEALTHCHECK" => {
            let (flags, rest) = leading_flags(args);
            let known = ["interval", "timeout", "start-period", "start-interval", "retries"];
            if let Some((k, _)) = flags.iter().find(|(k, _)| !known.contains(&k.as_str())) {
                return Err(err(line, format!("HEALTHCHECK: unknown flag --{k}")));
            }
            let rest = rest.trim();
            let (kw, cmd) = rest.split_at(rest.find(char::is_whitespace).unwrap_or(rest.len()));
            match kw.to_ascii_uppercase().as_str() {
                "NONE" if cmd.trim().is_empty() && flags.is_empty() => {
                    Instruction::Healthcheck { command: None, flags }
                }
                "CMD" if !cmd.trim().is_empty() => Instruction::Healthcheck {
                    command: Some(command(cmd)),
                    flags,
                },
                _ => return Err(err(line, "HEALTHCHECK takes NONE or [OPTIONS] CMD command")),
            }
        }
        "ONBUILD" => {
            let t = args.trim();
            let w = t.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
            if matches!(w.as_str(), "ONBUILD" | "FROM" | "MAINTAINER" | "") {
                return Err(err(line, format!("ONBUILD {w}: not allowed")));
            }
            Instruction::Onbuild(t.to_string())
        }
        _ => return Err(err(line, format!("unknown instruction {word}"))),
    })
}

/// Parse a Dockerfile.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut df = Dockerfile::default();
    let (escape, start) = directives(&lines, &mut df.warnings)?;
    df.escape = escape;
    let mut i = start;
    while i < lines.len() {
        let first = i + 1;
        let l = lines[i].trim_start();
        i += 1;
        if l.is_empty() || l.starts_with('#') {
            continue;
        }
        // Join the continued lines: the escape character last on a line continues it; comment
        // and blank lines inside are skipped.
        let mut text = String::new();
        let mut cur = l.trim_end().to_string();
        loop {
            if let Some(body) = cur.strip_suffix(escape) {
                text.push_str(body);
                let mut next = None;
                while i < lines.len() {
                    // A continued line keeps its indentation, as docker keeps it.
                    let raw = lines[i];
                    i += 1;
                    let n = raw.trim_start();
                    if n.starts_with('#') || n.trim().is_empty() {
                        continue;
                    }
                    next = Some(raw.trim_end().to_string());
                    break;
                }
                match next {
                    Some(n) => cur = n,
                    None => break,
                }
            } else {
                text.push_str(&cur);
                break;
            }
        }
        let (word, args) = text.split_at(text.find(char::is_whitespace).unwrap_or(text.len()));
        let instruction = instruction(word, args, escape, first)?;
        if df.steps.is_empty() && !matches!(instruction, Instruction::From { .. } | Instruction::Arg { .. }) {
            return Err(err(
                first,
                format!(
                    "{} before the first FROM (only ARG may come first)",
                    word.to_ascii_uppercase()
                ),
            ));
        }
        df.steps.push(Step {
            line: first,
            instruction,
            text: text.trim().to_string(),
        });
    }
    if !df
        .steps
        .iter()
        .any(|s| matches!(s.instruction, Instruction::From { .. }))
    {
        return Err(err(lines.len().max(1), "no FROM instruction"));
    }
    Ok(df)
}

/// docker's variable substitution in `s`: `$NAME`, `${NAME}`, `${NAME:-word}` (word when NAME is
/// unset or empty), `${NAME:+word}` (word when it is set and not empty); the escape character
/// before `$` keeps it. `lookup` gives a variable's value.
pub fn expand(s: &str, escape: char, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::new();
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let name_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    while i < chars.len() {
        let c = chars[i];
        if c == escape && chars.get(i + 1) == Some(&'$') {
            out.push('$');
            i += 2;
            continue;
        }
        if c != '$' {
            out.push(c);
            i += 1;
            continue;
        }
        if chars.get(i + 1) == Some(&'{') {
            let close = chars[i + 2..]
                .iter()
                .position(|c| *c == '}')
                .ok_or_else(|| format!("{s:?}: missing }} in ${{...}}"))?;
            let inner: String = chars[i + 2..i + 2 + close].iter().collect();
            let (name, op) = match inner.find(":") {
                Some(p) => (&inner[..p], Some(&inner[p..])),
                None => (inner.as_str(), None),
            };
            if name.is_empty() || !name.chars().all(name_char) {
                return Err(format!("{s:?}: bad substitution ${{{inner}}}"));
            }
            let v = lookup(name).filter(|v| !v.is_empty());
            match op {
                None => out.push_str(&lookup(name).unwrap_or_default()),
                Some(o) if o.starts_with(":-") => out.push_str(&v.unwrap_or_else(|| o[2..].to_string())),
                Some(o) if o.starts_with(":+") => {
                    if v.is_some() {
                        out.push_str(&o[2..]);
                    }
                }
                Some(o) => return Err(format!("{s:?}: unsupported modifier {o} in ${{{inner}}}")),
            }
            i += close + 3;
        } else {
            let n: String = chars[i + 1..].iter().take_while(|c| name_char(**c)).collect();
            if n.is_empty() {
                out.push('$');
                i += 1;
            } else {
                out.push_str(&lookup(&n).unwrap_or_default());
                i += 1 + n.chars().count();
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
