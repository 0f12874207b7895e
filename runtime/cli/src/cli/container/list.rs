//! `container ls`: docker's table, ids, or a JSON object per line.

use std::io::Write;

use wrun_front::container::{Containers, Record, Status};

use super::LsArgs;

/// "3 seconds", "5 minutes", "2 hours", "4 days" since an RFC 3339 time.
fn ago(t: Option<&str>) -> String {
    let Some(secs) = t.and_then(wrun_sys::timefmt::parse_rfc3339) else {
        return "?".into();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let d = (now - secs).max(0);
    match d {
        0..=1 => "Less than a second".into(),
        2..=59 => format!("{d} seconds"),
        60..=119 => "About a minute".into(),
        120..=3599 => format!("{} minutes", d / 60),
        3600..=7199 => "About an hour".into(),
        7200..=172_799 => format!("{} hours", d / 3600),
        _ => format!("{} days", d / 86400),
    }
}

fn status_text(r: &Record) -> String {
    match r.status {
        Status::Created => "Created".into(),
        Status::Running => {
            let health = match r.health_state.as_ref().map(|h| h.status.as_str()) {
                Some("starting") => " (health: starting)",
                Some("healthy") => " (healthy)",
                Some("unhealthy") => " (unhealthy)",
                _ => "",
            };
            format!("Up {}{health}", ago(r.started_at.as_deref()))
        }
        Status::Exited => format!(
            "Exited ({}) {} ago",
            r.exit_code.unwrap_or(-1),
            ago(r.finished_at.as_deref())
        ),
        Status::Restarting => format!(
            "Restarting ({}) {} ago",
            r.exit_code.unwrap_or(-1),
            ago(r.finished_at.as_deref())
        ),
        Status::Dead => "Dead".into(),
    }
}

pub(super) fn ls(root: &std::path::Path, a: &LsArgs) -> anyhow::Result<()> {
    let cs = Containers::open(root)?;
    let list: Vec<Record> = cs
        .list()?
        .into_iter()
        .filter(|r| a.all || matches!(r.status, Status::Running | Status::Restarting))
        .collect();
    let mut out = std::io::stdout().lock();
    if a.quiet {
        for r in &list {
            writeln!(out, "{}", if a.no_trunc { &r.id } else { r.short_id() })?;
        }
        return Ok(());
    }
    match a.format.as_deref() {
        Some("json") | Some("{{json .}}") => {
            for r in &list {
                let mut v = serde_json::to_value(r)?;
                v["state"] = serde_json::json!(r.status.as_str());
                v["status_text"] = serde_json::json!(status_text(r));
                writeln!(out, "{v}")?;
            }
            return Ok(());
        }
        Some(f) if f != "table" => anyhow::bail!("--format {f:?}: table or json"),
        _ => {}
    }
    let rows: Vec<[String; 6]> = list
        .iter()
        .map(|r| {
            // The image chose it: its control characters are shown escaped, never sent to
            // the terminal.
            let cmd: String = r
                .command
                .join(" ")
                .chars()
                .map(|c| {
                    if c.is_control() {
                        c.escape_default().to_string()
                    } else {
                        c.to_string()
                    }
                })
                .collect();
            let cmd = if a.no_trunc || cmd.chars().count() <= 20 {
                cmd
            } else {
                format!("{}…", cmd.chars().take(19).collect::<String>())
            };
            [
                if a.no_trunc {
                    r.id.clone()
                } else {
                    r.short_id().to_string()
                },
                r.image.clone(),
                format!("\"{cmd}\""),
                format!("{} ago", ago(Some(&r.created))),
                status_text(r),
                r.name.clone(),
            ]
        })
        .collect();
    let head = ["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES"];
    let mut w = head.map(|h| h.chars().count());
    for row in &rows {
        for (i, c) in row.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: [&str; 6]| -> String {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == 5 {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<width$}   ", width = w[i]));
            }
        }
        s
    };
    writeln!(out, "{}", line(head))?;
    for r in &rows {
        writeln!(out, "{}", line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]))?;
    }
    Ok(())
}
