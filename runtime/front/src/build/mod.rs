//! `wrun build`: images from a Dockerfile, as docker's builder makes them.
//!
//! The file is parsed whole first (`dockerfile`): a malformed one builds nothing. Then each
//! stage (`FROM … [AS name]`, up to `--target`) runs its instructions in order. Every
//! instruction but ARG gives an image, committed to the store as the build cache's answer for
//! the instruction's key: the parent image, the instruction as expanded, the build arguments
//! in scope and, for COPY and ADD, a digest of the content copied. A step whose key the cache
//! has is not run again. RUN, COPY and ADD add a layer (`step`); the others change only the
//! config. The last stage's image is tagged.

pub mod context;
pub mod dockerfile;
pub mod instr;
pub mod step;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::PathBuf;

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};
use wrun_image::store::{Image, Store};
use wrun_image::Reference;

use crate::container::{Containers, Error, Result};
use dockerfile::Instruction;

/// What `wrun build` was asked.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    pub context: PathBuf,
    /// The Dockerfile (default: `Dockerfile` in the context).
    pub file: Option<PathBuf>,
    pub tags: Vec<Reference>,
    /// `--build-arg K=V` (or `K`: its value from our environment).
    pub build_args: Vec<String>,
    pub target: Option<String>,
    pub no_cache: bool,
    /// The network of RUN steps: `host` (the default, as `docker build --network host`) or
    /// `none`.
    pub network: String,
    /// `--label K=V` for the final image.
    pub labels: Vec<String>,
    /// Only the image id on stdout.
    pub quiet: bool,
    /// `--platform OS/ARCH`: the platform of `FROM scratch` stages (`wasi/wasm` for a wasm
    /// image), and of the images pulled.
    pub platform: Option<(String, String)>,
}

/// What a build made.
#[derive(Debug)]
pub struct Built {
    pub image: Image,
    /// Steps run and steps the cache answered.
    pub ran: usize,
    pub cached: usize,
}

/// A stage being built.
pub struct Stage {
    pub name: Option<String>,
    /// The latest image of the stage; None while a `FROM scratch` stage has no step yet.
    pub image: Option<Image>,
    /// Its config (the whole image config: `config`, `rootfs`, `history`, ...).
    pub config: Value,
    /// The ARGs declared in the stage, with their values.
    pub args: BTreeMap<String, String>,
    /// The ARGs declared without a value (none given either): using one is an error.
    pub unset: BTreeSet<String>,
    /// Whether the stage set CMD itself (ENTRYPOINT then keeps it; else it clears the base's).
    pub cmd_set: bool,
    /// How many of its layers its FROM image had (not this Dockerfile's doing).
    pub base_layers: usize,
}

impl Stage {
    /// The value of variable `name` for substitution: ENV first, then ARG.
    pub fn var(&self, name: &str) -> Option<String> {
        self.config["config"]["Env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_str()?.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
            .or_else(|| self.args.get(name).cloned())
    }

    /// Every variable for substitution: the ARGs, and ENV over them.
    pub fn vars(&self) -> BTreeMap<String, String> {
        let mut v = self.args.clone();
        for e in self.config["config"]["Env"].as_array().into_iter().flatten() {
            if let Some((k, val)) = e.as_str().and_then(|e| e.split_once('=')) {
                v.insert(k.to_string(), val.to_string());
            }
        }
        v
    }

    /// The SHELL of shell-form commands.
    pub fn shell(&self) -> Vec<String> {
        self.config["config"]["Shell"]
            .as_array()
            .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
            .filter(|v: &Vec<String>| !v.is_empty())
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }
}

fn build_args(o: &BuildOptions) -> BTreeMap<String, String> {
    o.build_args
        .iter()
        .filter_map(|a| match a.split_once('=') {
            Some((k, v)) => Some((k.to_string(), v.to_string())),
            None => std::env::var(a).ok().map(|v| (a.clone(), v)),
        })
        .collect()
}

/// The image config of `FROM scratch` (linux/amd64 unless the build names a platform).
fn scratch_config(platform: Option<&(String, String)>) -> Value {
    let (os, arch) = platform.map_or(("linux", "amd64"), |(o, a)| (o.as_str(), a.as_str()));
    json!({
        "architecture": arch,
        "os": os,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [],
    })
}

/// Whether `t` refers to variable `name` (`$name` or `${name...}`).
fn refers_to(t: &str, name: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    t.match_indices('$').any(|(i, _)| {
        let rest = &t[i + 1..];
        match rest.strip_prefix('{') {
            Some(r) => r.strip_prefix(name).is_some_and(|after| after.starts_with(['}', ':'])),
            None => rest.strip_prefix(name).is_some_and(|after| !after.starts_with(ident)),
        }
    })
}

/// The build cache's key of a step.
fn key(parent: Option<&Image>, text: &str, args: &BTreeMap<String, String>, extra: &[u8]) -> String {
    let mut h = Sha256::new();
    h.update(parent.map_or("scratch", |p| p.digest.as_str()).as_bytes());
    h.update([0]);
    h.update(text.as_bytes());
    for (k, v) in args {
        h.update([0]);
        h.update(format!("{k}={v}").as_bytes());
    }
    h.update([0]);
    h.update(extra);
    format!("sha256:{:x}", h.finalize())
}

/// Build the image `o` describes. `base` gives a FROM image that is not a stage of this
/// file (from the store, or pulled). Progress goes to `out`; RUN steps' output to our stdout.
pub fn build(
    store: &Store,
    cs: &Containers,
    o: &BuildOptions,
    base: &dyn Fn(&str) -> Result<Image>,
    out: &mut dyn Write,
) -> Result<Built> {
    let ctx = context::Context::open(&o.context)?;
    // The context's own Dockerfile is read inside it; one named by -f is the user's to name.
    let text = match &o.file {
        None => ctx
            .read_file("Dockerfile")?
            .ok_or_else(|| Error::Invalid(format!("{}: no Dockerfile in the build context", o.context.display())))?,
        Some(f) => {
            let fd = nix::fcntl::open(
                f,
                nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .map_err(|e| Error::Invalid(format!("Dockerfile {}: {e}", f.display())))?;
            context::read_regular(crate::container::cp::own(fd), &format!("Dockerfile {}", f.display()))?
        }
    };
    let df = dockerfile::parse(&text).map_err(|e| Error::Invalid(e.to_string()))?;
    for w in &df.warnings {
        eprintln!("wrun: warning: {w}");
    }
    if !matches!(o.network.as_str(), "host" | "none" | "default") {
        return Err(Error::Invalid(format!(
            "--network {}: host or none (RUN steps have no bridge)",
            o.network
        )));
    }
    let given = build_args(o);
    let epoch = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => Some(
            v.parse::<u64>()
                .map_err(|_| Error::Invalid(format!("SOURCE_DATE_EPOCH {v:?}: not a number of seconds")))?,
        ),
        Err(_) => None,
    };
    // The stages, each from its FROM; the ARGs before the first FROM are global.
    let first = df
        .steps
        .iter()
        .position(|s| matches!(s.instruction, Instruction::From { .. }))
        .unwrap_or(0);
    let mut global = BTreeMap::new();
    let mut global_unset = BTreeSet::new();
    for s in &df.steps[..first] {
        match &s.instruction {
            Instruction::Arg { name, default } => match given.get(name).cloned().or_else(|| default.clone()) {
                Some(v) => {
                    global.insert(name.clone(), v);
                }
                None => {
                    global_unset.insert(name.clone());
                }
            },
            _ => {
                return Err(Error::Invalid(format!(
                    "Dockerfile:{}: only ARG may come before the first FROM",
                    s.line
                )))
            }
        }
    }
    let mut stages: Vec<Vec<&dockerfile::Step>> = Vec::new();
    for s in &df.steps[first..] {
        if matches!(s.instruction, Instruction::From { .. }) {
            stages.push(Vec::new());
        }
        if let Some(last) = stages.last_mut() {
            last.push(s);
        }
    }
    let names: Vec<Option<String>> = stages
        .iter()
        .map(|st| match &st[0].instruction {
            Instruction::From { alias, .. } => alias.clone(),
            _ => None,
        })
        .collect();
    let last = match &o.target {
        Some(t) => names
            .iter()
            .position(|n| n.as_deref() == Some(t.as_str()))
            .ok_or_else(|| Error::Invalid(format!("--target {t}: no stage of that name")))?,
        None => stages.len() - 1,
    };
    let total: usize = stages[..=last].iter().map(Vec::len).sum();
    let w = step::Work::new(store, cs, epoch)?;
    let mut done: Vec<Stage> = Vec::new();
    let (mut n, mut ran, mut cached) = (0, 0, 0);
    for steps in &stages[..=last] {
        let mut stage: Option<Stage> = None;
        for s in steps {
            n += 1;
            if !o.quiet {
                let _ = writeln!(out, "Step {n}/{total} : {}", s.text);
            }
            // The variables as they are before this instruction.
            let vars = match &stage {
                Some(st) => st.vars(),
                None => global.clone(),
            };
            let lookup = |v: &str| vars.get(v).cloned();
            let unset = stage.as_ref().map_or(&global_unset, |st| &st.unset).clone();
            let expand = |t: &str| {
                if let Some(n) = unset.iter().find(|n| refers_to(t, n)) {
                    return Err(Error::Invalid(format!(
                        "ARG {n} is used but has no value: give it one (ARG {n}=VALUE, or --build-arg {n}=VALUE)"
                    )));
                }
                dockerfile::expand(t, df.escape, &lookup).map_err(Error::Invalid)
            };
            if let Instruction::From { image, alias, .. } = &s.instruction {
                let name = expand(image).map_err(|e| Error::Invalid(format!("Dockerfile:{}: {e}", s.line)))?;
                if name.is_empty() {
                    return Err(Error::Invalid(format!(
                        "Dockerfile:{}: FROM: the image name is empty",
                        s.line
                    )));
                }
                let (img, config, base_layers) = if name == "scratch" {
                    (None, scratch_config(o.platform.as_ref()), 0)
                } else if let Some(prev) = done.iter().find(|d| d.name.as_deref() == Some(name.as_str())) {
                    (prev.image.clone(), prev.config.clone(), prev.base_layers)
                } else {
                    let img = base(&name)?;
                    let cfg = img.config.clone();
                    let n = img.manifest.layers.len();
                    (Some(img), cfg, n)
                };
                if !o.quiet {
                    if let Some(i) = &img {
                        let _ = writeln!(out, " ---> {}", i.id.short());
                    }
                }
                stage = Some(Stage {
                    name: alias.clone(),
                    image: img,
                    config,
                    args: BTreeMap::new(),
                    unset: BTreeSet::new(),
                    cmd_set: false,
                    base_layers,
                });
                continue;
            }
            let st = stage.as_mut().ok_or_else(|| Error::Invalid("no FROM".into()))?;
            if let Instruction::Arg { name, default } = &s.instruction {
                // A global ARG redeclared in the stage takes the global value as its default.
                let v = given
                    .get(name)
                    .cloned()
                    .or_else(|| default.as_deref().and_then(|d| expand(d).ok()))
                    .or_else(|| global.get(name).cloned());
                match v {
                    Some(v) => {
                        st.args.insert(name.clone(), v);
                        st.unset.remove(name);
                    }
                    None => {
                        st.unset.insert(name.clone());
                    }
                }
                continue;
            }
            let plan = instr::plan(&ctx, st, s, &expand, &done, base)
                .map_err(|e| Error::Invalid(format!("Dockerfile:{}: {e}", s.line)))?;
            let k = key(st.image.as_ref(), &plan.text, &st.args, &plan.extra);
            if let Some(img) = (!o.no_cache).then(|| store.cached(&k)).flatten() {
                if !o.quiet {
                    let _ = writeln!(out, " ---> Using cache\n ---> {}", img.id.short());
                }
                st.config = img.config.clone();
                st.image = Some(img);
                plan.after(st);
                cached += 1;
                continue;
            }
            let img = instr::execute(&w, &ctx, st, plan, &o.network, &k)
                .map_err(|e| Error::Invalid(format!("Dockerfile:{}: {}: {e}", s.line, s.text)))?;
            if !o.quiet {
                let _ = writeln!(out, " ---> {}", img.id.short());
            }
            ran += 1;
        }
        if let Some(st) = stage {
            done.push(st);
        }
    }
    let mut fin = done.pop().ok_or_else(|| Error::Invalid("no stage was built".into()))?;
    if !o.labels.is_empty() {
        let labels: Vec<(String, String)> = o
            .labels
            .iter()
            .map(|l| match l.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (l.clone(), String::new()),
            })
            .collect();
        let text = format!("LABEL {}", o.labels.join(" "));
        let k = key(fin.image.as_ref(), &text, &BTreeMap::new(), &[]);
        instr::label(&mut fin.config, &labels);
        let img = step::commit(
            &w,
            store.stage()?,
            fin.image.as_ref(),
            fin.config.clone(),
            None,
            &text,
            &k,
        )?;
        fin.image = Some(img);
    }
    let image = match fin.image {
        Some(i) => i,
        // FROM scratch and nothing else: an image with no layers.
        None => step::commit(
            &w,
            store.stage()?,
            None,
            fin.config,
            None,
            "FROM scratch",
            &key(None, "", &BTreeMap::new(), &[]),
        )?,
    };
    if !o.quiet {
        warn_deleted_later(store, &image, fin.base_layers);
    }
    Ok(Built { image, ran, cached })
}

/// Name the built image with `tags` (with none: keep it as an untagged image, as docker
/// lists a build without -t). Until then the build is only the cache's.
pub fn publish(store: &Store, image: &Image, tags: &[Reference]) -> Result<Image> {
    for t in tags {
        store.tag(image.digest.as_str(), t)?;
    }
    if tags.is_empty() {
        store.keep(image)?;
    }
    Ok(store.resolve(image.digest.as_str())?)
}

/// Warn of files one step adds and a later step deletes: the image still carries them.
fn warn_deleted_later(store: &Store, image: &Image, from: usize) {
    let Ok(waste) = wrun_provenance::waste::deleted_later(store, image, from) else {
        return;
    };
    // The instruction that made each layer: the history entries that are not empty layers.
    let by: Vec<String> = image.config["history"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|h| h["empty_layer"].as_bool() != Some(true))
        .map(|h| h["created_by"].as_str().unwrap_or("").to_string())
        .collect();
    let step = |i: usize| by.get(i).map_or_else(|| format!("layer {}", i + 1), |b| b.clone());
    for w in waste.iter().filter(|w| w.bytes >= 1000) {
        let paths: Vec<String> = w.paths.iter().map(|p| p.display().to_string()).collect();
        eprintln!(
            "wrun: warning: {} deletes {} in {} files ({}{}) that {} added: the image still carries them; do both in one RUN",
            step(w.deleted_in),
            wrun_image::view::human_size(w.bytes),
            w.files,
            paths.join(", "),
            if w.files as usize > paths.len() { ", …" } else { "" },
            step(w.added_in)
        );
    }
}
