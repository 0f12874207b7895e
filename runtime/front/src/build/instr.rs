//! Each instruction of a stage: planned (expanded, its cache key's content known, the config
//! it gives computed), then executed when the cache has no answer.

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use wrun_image::store::Image;

use super::context::Context;
use super::dockerfile::{Command, Instruction, Step};
use super::step::{self, Root, Source, Work};
use super::Stage;
use crate::container::cp::{self, Rules};
use crate::container::{Error, Result};

/// A COPY or ADD to do.
pub struct Copy {
    /// Context paths, or paths in `from`'s root.
    sources: Vec<String>,
    dest: String,
    chown: Option<String>,
    chmod: Option<u32>,
    /// `--from`: the image whose root the sources are read from.
    from: Option<Image>,
    /// ADD: a local tar archive (compressed or not) is unpacked at the destination.
    add: bool,
}

enum Action {
    /// Only the config changes: to this.
    Config(Value),
    Run {
        argv: Vec<String>,
        env: Vec<String>,
    },
    Copy(Box<Copy>),
}

/// An instruction, planned.
pub struct Plan {
    /// The instruction as expanded: part of its cache key and its history's `created_by`.
    pub text: String,
    /// What else the key covers: the content a COPY reads.
    pub extra: Vec<u8>,
    action: Action,
    sets_cmd: bool,
}

impl Plan {
    /// What the stage remembers of the instruction beside its image.
    pub fn after(&self, st: &mut Stage) {
        if self.sets_cmd {
            st.cmd_set = true;
        }
    }
}

/// `c` as an argv: exec form as written, shell form through the SHELL.
fn argv(c: &Command, shell: &[String]) -> Vec<String> {
    match c {
        Command::Exec(v) => v.clone(),
        Command::Shell(s) => shell.iter().cloned().chain([s.clone()]).collect(),
    }
}

/// Set `labels` in image config `cfg`.
pub fn label(cfg: &mut Value, labels: &[(String, String)]) {
    let l = &mut cfg["config"]["Labels"];
    if !l.is_object() {
        *l = json!({});
    }
    for (k, v) in labels {
        l[k] = json!(v);
    }
}

fn flag<'a>(flags: &'a [(String, String)], name: &str) -> Option<&'a str> {
    flags.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn only_flags(flags: &[(String, String)], known: &[&str], what: &str) -> Result<()> {
    match flags.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        Some((k, _)) => Err(Error::Invalid(format!("{what} --{k}: not supported"))),
        None => Ok(()),
    }
}

/// Go durations of HEALTHCHECK's flags, in nanoseconds as the image config keeps them.
fn nanos(flags: &[(String, String)], name: &str) -> Result<Option<u64>> {
    flag(flags, name)
        .map(|v| {
            crate::container::health::parse_duration(v)
                .map(|d| d.as_nanos() as u64)
                .ok_or_else(|| Error::Invalid(format!("HEALTHCHECK --{name}={v}: not a duration")))
        })
        .transpose()
}

/// Plan instruction `s` of stage `st`; `expand` substitutes variables, `done` holds the stages
/// built before, `base` gives other images (`COPY --from=IMAGE`).
pub fn plan(
    ctx: &Context,
    st: &Stage,
    s: &Step,
    expand: &dyn Fn(&str) -> Result<String>,
    done: &[Stage],
    base: &dyn Fn(&str) -> Result<Image>,
) -> Result<Plan> {
    let mut cfg = st.config.clone();
    let c = &mut cfg["config"];
    if !c.is_object() {
        *c = json!({});
    }
    let mut text = s.text.clone();
    let mut sets_cmd = false;
    let action = match &s.instruction {
        Instruction::Env(pairs) => {
            let mut env: Vec<String> = c["Env"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e.as_str().map(String::from))
                .collect();
            // Each value sees the ones before it on the same line, as docker's.
            let mut tmp = Stage {
                name: None,
                image: None,
                config: json!({"config": {"Env": env.clone()}}),
                args: st.args.clone(),
                unset: Default::default(),
                cmd_set: false,
                base_layers: 0,
            };
            let mut shown = Vec::new();
            for (k, v) in pairs {
                let v = super::dockerfile::expand(v, '\\', &|n| tmp.var(n)).map_err(Error::Invalid)?;
                env.retain(|e| e.split_once('=').map_or(e.as_str(), |(n, _)| n) != k);
                env.push(format!("{k}={v}"));
                tmp.config["config"]["Env"] = json!(env.clone());
                shown.push(format!("{k}={v}"));
            }
            text = format!("ENV {}", shown.join(" "));
            c["Env"] = json!(env);
            Action::Config(cfg)
        }
        Instruction::Label(pairs) => {
            let l: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| Ok((expand(k)?, expand(v)?)))
                .collect::<Result<_>>()?;
            label(&mut cfg, &l);
            Action::Config(cfg)
        }
        Instruction::Maintainer(m) => {
            label(&mut cfg, &[("maintainer".into(), m.clone())]);
            Action::Config(cfg)
        }
        Instruction::Workdir(d) => {
            let d = expand(d)?;
            text = format!("WORKDIR {d}");
            let cur = c["WorkingDir"].as_str().unwrap_or("/").to_string();
            let p = if d.starts_with('/') {
                PathBuf::from(&d)
            } else {
                Path::new(&cur).join(&d)
            };
            c["WorkingDir"] = json!(p.display().to_string());
            Action::Config(cfg)
        }
        Instruction::User(u) => {
            let u = expand(u)?;
            text = format!("USER {u}");
            c["User"] = json!(u);
            Action::Config(cfg)
        }
        Instruction::Expose(ports) => {
            let e = &mut c["ExposedPorts"];
            if !e.is_object() {
                *e = json!({});
            }
            for p in ports {
                let p = expand(p)?;
                let p = if p.contains('/') { p } else { format!("{p}/tcp") };
                e[p] = json!({});
            }
            Action::Config(cfg)
        }
        Instruction::Volume(vols) => {
            let v = &mut c["Volumes"];
            if !v.is_object() {
                *v = json!({});
            }
            for p in vols {
                v[expand(p)?] = json!({});
            }
            Action::Config(cfg)
        }
        Instruction::StopSignal(sig) => {
            c["StopSignal"] = json!(expand(sig)?);
            Action::Config(cfg)
        }
        Instruction::Shell(sh) => {
            c["Shell"] = json!(sh);
            Action::Config(cfg)
        }
        Instruction::Cmd(cmd) => {
            c["Cmd"] = json!(argv(cmd, &st.shell()));
            sets_cmd = true;
            Action::Config(cfg)
        }
        Instruction::Entrypoint(cmd) => {
            c["Entrypoint"] = json!(argv(cmd, &st.shell()));
            // docker's rule: an ENTRYPOINT clears the CMD the base image gave.
            if !st.cmd_set {
                c["Cmd"] = Value::Null;
            }
            Action::Config(cfg)
        }
        Instruction::Healthcheck { command, flags } => {
            only_flags(
                flags,
                &["interval", "timeout", "start-period", "start-interval", "retries"],
                "HEALTHCHECK",
            )?;
            let mut h = json!({"Test": match command {
                None => json!(["NONE"]),
                Some(Command::Shell(s)) => json!(["CMD-SHELL", s]),
                Some(Command::Exec(v)) => json!(std::iter::once("CMD".to_string()).chain(v.iter().cloned()).collect::<Vec<_>>()),
            }});
            for (f, k) in [
                ("interval", "Interval"),
                ("timeout", "Timeout"),
                ("start-period", "StartPeriod"),
            ] {
                if let Some(n) = nanos(flags, f)? {
                    h[k] = json!(n);
                }
            }
            if let Some(r) = flag(flags, "retries") {
                let r: u32 = r
                    .parse()
                    .map_err(|_| Error::Invalid(format!("HEALTHCHECK --retries={r}: not a number")))?;
                h["Retries"] = json!(r);
            }
            c["Healthcheck"] = h;
            Action::Config(cfg)
        }
        Instruction::Onbuild(t) => {
            let o = &mut c["OnBuild"];
            match o.as_array_mut() {
                Some(a) => a.push(json!(t)),
                None => *o = json!([t]),
            }
            Action::Config(cfg)
        }
        Instruction::Run { command, flags } => {
            only_flags(flags, &[], "RUN")?;
            // The build arguments in scope are the command's environment, under its ENV.
            let env: Vec<String> = st
                .args
                .iter()
                .filter(|(k, _)| st.var(k).as_deref() == st.args.get(*k).map(String::as_str))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            Action::Run {
                argv: argv(command, &st.shell()),
                env,
            }
        }
        Instruction::Copy {
            add,
            sources,
            dest,
            flags,
        } => {
            let what = if *add { "ADD" } else { "COPY" };
            only_flags(flags, &["from", "chown", "chmod", "link"], what)?;
            let sources: Vec<String> = sources.iter().map(|s| expand(s)).collect::<Result<_>>()?;
            if *add {
                if let Some(u) = sources.iter().find(|s| s.contains("://") || s.starts_with("git@")) {
                    return Err(Error::Invalid(format!(
                        "ADD {u}: remote sources are refused; download it in a RUN step, or put it in the build context"
                    )));
                }
            }
            let dest = expand(dest)?;
            let cur = c["WorkingDir"].as_str().unwrap_or("/").to_string();
            let joined = if dest.starts_with('/') {
                dest.clone()
            } else {
                format!("{cur}/{dest}")
            };
            let mut abs = format!("/{}", super::context::clean(&joined).unwrap_or_default().join("/"));
            if (dest.ends_with('/') || dest.ends_with("/.") || dest == ".") && !abs.ends_with('/') {
                abs.push('/');
            }
            let chmod = flag(flags, "chmod")
                .map(|m| {
                    u32::from_str_radix(m, 8)
                        .ok()
                        .filter(|m| *m <= 0o7777)
                        .ok_or_else(|| Error::Invalid(format!("{what} --chmod={m}: an octal mode")))
                })
                .transpose()?;
            let mut h = Sha256::new();
            let from = match flag(flags, "from") {
                Some(f) => {
                    let f = expand(f)?;
                    let img = match done
                        .iter()
                        .enumerate()
                        .find(|(i, d)| d.name.as_deref() == Some(f.as_str()) || f == i.to_string())
                    {
                        Some((_, d)) => d.image.clone().ok_or_else(|| {
                            Error::Invalid(format!("{what} --from={f}: that stage has no filesystem"))
                        })?,
                        None => base(&f)?,
                    };
                    h.update(img.digest.as_str().as_bytes());
                    for s in &sources {
                        h.update(s.as_bytes());
                    }
                    Some(img)
                }
                None => {
                    for s in &sources {
                        for rel in ctx.sources(s, what)? {
                            ctx.hash(&rel, &mut h)?;
                        }
                    }
                    None
                }
            };
            text = format!(
                "{} {} {}",
                s.text.split_whitespace().next().unwrap_or(what),
                sources.join(" "),
                abs
            );
            for (k, v) in flags {
                text.push_str(&format!(" --{k}={v}"));
            }
            return Ok(Plan {
                text,
                extra: h.finalize().to_vec(),
                action: Action::Copy(Box::new(Copy {
                    sources,
                    dest: abs,
                    chown: flag(flags, "chown").map(expand).transpose()?,
                    chmod,
                    from,
                    add: *add,
                })),
                sets_cmd,
            });
        }
        Instruction::From { .. } | Instruction::Arg { .. } => unreachable!("handled by the stage loop"),
    };
    // The key covers the config the instruction gives (its variables as expanded).
    let extra = match &action {
        Action::Config(cfg) => serde_json::to_vec(&cfg["config"]).unwrap_or_default(),
        _ => Vec::new(),
    };
    Ok(Plan {
        text,
        extra,
        action,
        sets_cmd,
    })
}

/// Run `p` on stage `st`: its image is committed under `key` and becomes the stage's.
pub fn execute(w: &Work, ctx: &Context, st: &mut Stage, p: Plan, network: &str, key: &str) -> Result<Image> {
    let mut staged = w.store.stage()?;
    let network = if network == "default" { "host" } else { network };
    let (config, layer) = match &p.action {
        Action::Config(cfg) => (cfg.clone(), None),
        Action::Run { argv, env } => {
            let img = st
                .image
                .as_ref()
                .filter(|i| !i.manifest.layers.is_empty())
                .ok_or_else(|| {
                    Error::Invalid("RUN needs a filesystem: this stage has none yet (FROM scratch)".into())
                })?;
            let l = step::run_step(w, &mut staged, img, argv.clone(), env.clone(), network)?;
            (st.config.clone(), Some(l))
        }
        Action::Copy(c) => {
            let root = Root::open(w, st.image.as_ref())?;
            let owner = match &c.chown {
                None => (0, 0),
                Some(spec) => {
                    let u = crate::container::user::resolve(&root_path(&root), spec)
                        .map_err(|e| Error::Invalid(format!("--chown={spec}: {e}")))?;
                    (u.uid, u.gid)
                }
            };
            let skip = |p: &Path| ctx.rel_of(p).is_some_and(|r| ctx.excluded(&r));
            let rules = Rules {
                owner: Some(owner),
                mode_mask: 0o7777,
                mode: c.chmod,
                skip: Some(&skip),
            };
            // The source image's root stays mounted until its sources (open in it) are closed:
            // declared first, it is dropped last.
            let from = c.from.as_ref().map(|img| Root::open(w, Some(img))).transpose()?;
            let srcs = match &from {
                None => context_sources(ctx, &c.sources)?,
                Some(f) => image_sources(f, &c.sources)?,
            };
            let (archives, srcs): (Vec<Source>, Vec<Source>) = srcs
                .into_iter()
                .partition(|s| c.add && c.from.is_none() && !s.is_dir && is_archive(s));
            if !srcs.is_empty() {
                step::copy_into(&root, &srcs, &c.dest, rules)?;
            }
            for a in archives {
                // Unpacked as a layer is (every path resolved inside the destination).
                let d = step::mkdir_in_root(root.fd(), Path::new(&c.dest), owner)?;
                let f = open_regular(&a)
                    .ok_or_else(|| Error::Invalid(format!("ADD {}: not a regular file", a.shown.display())))?;
                wrun_image::unpack::unpack_layer(f, Path::new(&format!("/proc/self/fd/{}", d.as_raw_fd())))
                    .map_err(|e| Error::Invalid(format!("ADD {}: {e}", a.shown.display())))?;
            }
            let l = step::copy_layer(w, &mut staged, &root)?;
            (st.config.clone(), Some(l))
        }
    };
    let img = step::commit(w, staged, st.image.as_ref(), config, layer, &p.text, key)?;
    st.config = img.config.clone();
    st.image = Some(img.clone());
    p.after(st);
    Ok(img)
}

/// The host path of a root (for /etc/passwd lookups, which resolve inside it).
fn root_path(root: &Root) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", root.fd().as_raw_fd()))
}

/// The context sources, opened: a directory itself (its contents are copied), anything else
/// by its parent and name (a symlink stays a symlink).
fn context_sources(ctx: &Context, sources: &[String]) -> Result<Vec<Source>> {
    let mut out = Vec::new();
    for s in sources {
        for rel in ctx.sources(s, "COPY")? {
            let shown = ctx.path(&rel);
            let (parent, name) = match rel.split_last() {
                Some((n, parent)) => (parent, Some(n.clone())),
                None => (&rel[..0], None),
            };
            let pdir = ctx.open_dir(parent)?;
            out.push(open_source(pdir, name.as_deref(), shown)?);
        }
    }
    Ok(out)
}

/// Sources in another image's root, resolved inside it.
fn image_sources(from: &Root, sources: &[String]) -> Result<Vec<Source>> {
    let mut out = Vec::new();
    for s in sources {
        let rel = super::context::clean(s).unwrap_or_default();
        let (name, parent) = match rel.split_last() {
            Some((n, p)) => (Some(n.clone()), p.iter().collect::<PathBuf>()),
            None => (None, PathBuf::new()),
        };
        let parent = if parent.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            parent
        };
        let pdir =
            wrun_sys::inroot::openat2_in_root(from.fd().as_raw_fd(), &parent, libc::O_RDONLY | libc::O_DIRECTORY)
                .map_err(|e| Error::Invalid(format!("COPY --from {s}: {e}")))?;
        out.push(open_source(pdir, name.as_deref(), PathBuf::from(s))?);
    }
    Ok(out)
}

fn open_source(pdir: std::os::fd::OwnedFd, name: Option<&str>, shown: PathBuf) -> Result<Source> {
    let Some(name) = name else {
        return Ok(Source {
            dir: pdir,
            name: None,
            is_dir: true,
            shown,
        });
    };
    let cname = std::ffi::CString::new(name).map_err(|_| Error::Invalid(format!("{name}: a NUL byte")))?;
    let st = cp::stat_at(pdir.as_raw_fd(), &cname).map_err(cp::sys(format!("{}", shown.display())))?;
    if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
        let d = cp::open_at(
            pdir.as_raw_fd(),
            &cname,
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_NOFOLLOW,
            0,
        )
        .map_err(cp::sys(format!("open {}", shown.display())))?;
        return Ok(Source {
            dir: d,
            name: None,
            is_dir: true,
            shown,
        });
    }
    Ok(Source {
        dir: pdir,
        name: Some(cname),
        is_dir: false,
        shown,
    })
}

/// Source `s` opened for reading if it is a regular file (not a symlink, FIFO or device).
fn open_regular(s: &Source) -> Option<std::fs::File> {
    let name = s.name.as_deref()?;
    let flags = nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK;
    let fd = cp::open_at(s.dir.as_raw_fd(), name, flags, 0).ok()?;
    let st = nix::sys::stat::fstat(fd.as_raw_fd()).ok()?;
    (st.st_mode & libc::S_IFMT == libc::S_IFREG).then(|| std::fs::File::from(fd))
}

/// Whether source `s` is a tar archive, compressed or not.
fn is_archive(s: &Source) -> bool {
    let Some(f) = open_regular(s) else { return false };
    let Ok(mut r) = wrun_image::unpack::decompressed(f) else {
        return false;
    };
    let mut head = [0u8; 512];
    std::io::Read::read_exact(&mut r, &mut head).is_ok() && &head[257..262] == b"ustar"
}
