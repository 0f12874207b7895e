//! `--log FILE --log-format text|json`: log lines in runc's shapes, because containerd reads
//! the JSON form (`{"level":…,"msg":…,"time":…}`) back to report a runtime's errors.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

struct RuncLines {
    format: LogFormat,
    max: Level,
    out: &'static Mutex<Box<dyn Write + Send>>,
}

#[derive(Default)]
struct Fields {
    msg: String,
    extra: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, f: &Field, v: &str) {
        if f.name() == "message" {
            self.msg = v.to_string();
        } else {
            self.extra.push((f.name().to_string(), v.to_string()));
        }
    }

    fn record_debug(&mut self, f: &Field, v: &dyn std::fmt::Debug) {
        if f.name() == "message" {
            self.msg = format!("{v:?}");
        } else {
            self.extra.push((f.name().to_string(), format!("{v:?}")));
        }
    }
}

/// One log line for `level` and `msg` in the chosen format.
pub fn line(format: LogFormat, level: &Level, msg: &str, extra: &[(String, String)]) -> String {
    let lvl = level.as_str().to_ascii_lowercase();
    let time = crate::timefmt::now();
    match format {
        LogFormat::Json => {
            let mut m = serde_json::Map::new();
            m.insert("level".into(), lvl.into());
            m.insert("msg".into(), msg.into());
            m.insert("time".into(), time.into());
            for (k, v) in extra {
                m.insert(k.clone(), v.clone().into());
            }
            serde_json::Value::Object(m).to_string()
        }
        LogFormat::Text => {
            let mut s = format!("time={time:?} level={lvl} msg={msg:?}");
            for (k, v) in extra {
                s += &format!(" {k}={v:?}");
            }
            s
        }
    }
}

impl<S: Subscriber> Layer<S> for RuncLines {
    fn enabled(&self, m: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        // `--debug` is about wrun's own steps: the compiler's per-function chatter
        // (cranelift, wasmtime) would bury them and slow a compile down a hundredfold.
        m.level() <= &self.max && (m.level() <= &Level::WARN || m.target().starts_with("wrun"))
    }

    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let mut f = Fields::default();
        event.record(&mut f);
        let l = line(self.format, event.metadata().level(), &f.msg, &f.extra);
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{l}");
        }
    }
}

/// Install the logger: to `file` when given, else stderr; debug level with `debug`, else
/// warnings and errors. Without a file and without `--debug` nothing is installed, so the
/// common path pays nothing.
pub fn init(file: Option<&Path>, format: LogFormat, debug: bool) -> std::io::Result<()> {
    let max = if debug { Level::DEBUG } else { Level::WARN };
    let out: Box<dyn Write + Send> = match file {
        Some(p) => Box::new(std::fs::OpenOptions::new().create(true).append(true).open(p)?),
        None if debug => Box::new(std::io::stderr()),
        None => return Ok(()),
    };
    let out: &'static Mutex<Box<dyn Write + Send>> = OUT.get_or_init(|| Mutex::new(out));
    let _ = tracing_subscriber::registry()
        .with(RuncLines { format, max, out })
        .try_init();
    Ok(())
}

/// A warning the user must see even when no log is kept (without `--log` or `--debug`
/// nothing is installed): to the log when there is one, else to stderr as
/// `wrun: warning: ...`.
pub fn warn_user(msg: &str) {
    if OUT.get().is_some() {
        tracing::warn!("{msg}");
    } else {
        eprintln!("wrun: warning: {msg}");
    }
}

/// Where the log lines go; `silence` swaps it for a sink.
static OUT: std::sync::OnceLock<Mutex<Box<dyn Write + Send>>> = std::sync::OnceLock::new();

/// Stop writing log lines: a container's init calls this before it closes every fd it
/// inherited, the log file's among them, so a line logged later cannot land in whatever file
/// reuses that fd number.
pub fn silence() {
    if let Some(out) = OUT.get() {
        if let Ok(mut o) = out.lock() {
            *o = Box::new(std::io::sink());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_have_runcs_fields() {
        let l = line(LogFormat::Json, &Level::ERROR, "container x does not exist", &[]);
        let v: serde_json::Value = serde_json::from_str(&l).unwrap();
        assert_eq!(v["level"], "error");
        assert_eq!(v["msg"], "container x does not exist");
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn text_lines_quote_the_message() {
        let l = line(LogFormat::Text, &Level::WARN, "a \"b\"", &[]);
        assert!(l.contains("level=warn msg=\"a \\\"b\\\"\""), "{l}");
    }
}
