//! `wrun image ...`: the local image store (crate wrun-image), docker's verbs and output.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use wrun_image::archive::{self, ImportOptions};
use wrun_image::registry::{self, Progress, RegistryOptions};
use wrun_image::store::{self, oci::Platform, Store};
use wrun_image::view;
use wrun_image::Reference;

#[derive(Args, Debug)]
pub struct ImageArgs {
    /// The data root of the image store [default: $WRUN_DATA_ROOT, else /var/lib/wrun].
    #[arg(long, global = true)]
    pub data_root: Option<PathBuf>,
    #[command(subcommand)]
    pub command: ImageCommand,
}

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Pull an image from a registry.
    Pull(PullArgs),
    /// Push an image to a registry.
    Push(PushArgs),
    /// Import an image archive (docker save, OCI archive) or a root filesystem tar.
    #[command(alias = "load")]
    Import(ImportArgs),
    /// Write images to one archive (an OCI layout plus docker's manifest.json).
    #[command(alias = "export")]
    Save(SaveArgs),
    /// List images.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Print images' configuration and layers as JSON.
    Inspect(NamesArg),
    /// Remove images (a tag only untags while another tag names the image).
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Give an image another name.
    Tag(TagArgs),
    /// Remove images without a tag (with --all, every image) and what only they used.
    Prune(PruneArgs),
    /// Show how an image was made, layer by layer.
    History(NameArg),
    /// Show the space images and layers use, and how much a prune would free.
    Df,
    /// Mount an image's root filesystem at DIR/rootfs (an overlay; writes go to DIR/upper).
    Mount(MountArgs),
    /// Unmount what `image mount` mounted at DIR, and remove its writes.
    #[command(alias = "umount")]
    Unmount(DirArg),
    /// List the packages in an image (dpkg, apk, known binaries, wasm modules), each with its
    /// layer, as a table, SPDX or CycloneDX.
    Sbom(super::provenance::SbomArgs),
    /// Match an image's packages against a local OSV vulnerability database.
    Scan(super::provenance::ScanArgs),
    /// Sign an image in a registry (cosign's key-based format, stored beside it).
    Sign(super::trust::SignArgs),
    /// Verify an image's cosign signatures in a registry with a public key.
    Verify(super::trust::VerifyArgs),
    /// Make a key pair for `image sign` (PREFIX.key, mode 0600, and PREFIX.pub).
    Keygen(super::trust::KeygenArgs),
}

#[derive(Args, Debug)]
pub struct MountArgs {
    #[arg(value_name = "IMAGE")]
    pub image: String,
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

#[derive(Args, Debug)]
pub struct DirArg {
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// How to reach a registry.
#[derive(Args, Debug, Clone)]
pub struct RegistryArgs {
    /// The credentials file [default: $REGISTRY_AUTH_FILE, else ~/.docker/config.json].
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
    /// Speak plain HTTP to this registry (host[:port]); loopback registries always are.
    #[arg(long, value_name = "REGISTRY")]
    pub insecure_registry: Vec<String>,
    #[command(flatten)]
    pub trust: super::trust::TrustArgs,
}

impl RegistryArgs {
    pub fn options(&self) -> RegistryOptions {
        let plain = RegistryOptions {
            insecure: self.insecure_registry.clone(),
            auth_file: self.authfile.clone(),
            verify: None,
        };
        self.trust.options(plain)
    }
}

#[derive(Args, Debug)]
pub struct PullArgs {
    #[arg(value_name = "NAME[:TAG|@DIGEST]")]
    pub reference: String,
    /// The platform to take from a multi-platform image (os/arch[/variant]) [default:
    /// linux/amd64, else a wasm one].
    #[arg(long)]
    pub platform: Option<String>,
    /// Print only the image's name.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Args, Debug)]
pub struct PushArgs {
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// Where to push it [default: IMAGE as a reference].
    #[arg(value_name = "NAME:TAG")]
    pub destination: Option<String>,
    /// Print only the manifest digest.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The archive: docker save or OCI archive, or a root filesystem tar (compressed or not).
    #[arg(value_name = "FILE", required_unless_present = "input")]
    pub file: Option<PathBuf>,
    /// The archive, as `docker load -i`.
    #[arg(short, long, value_name = "FILE", conflicts_with = "file")]
    pub input: Option<PathBuf>,
    /// The name to give the image (required meaning for a root filesystem tar).
    #[arg(long, value_name = "NAME[:TAG]")]
    pub name: Option<String>,
    /// A Dockerfile instruction for a root filesystem tar's config (CMD, ENTRYPOINT, ENV,
    /// EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR); repeatable.
    #[arg(short, long, value_name = "INSTRUCTION")]
    pub change: Vec<String>,
    /// Take this platform from a multi-platform archive (os/arch[/variant]).
    #[arg(long)]
    pub platform: Option<String>,
    /// Print only the image ids.
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct SaveArgs {
    /// The archive to write.
    #[arg(short, long, value_name = "FILE")]
    pub output: PathBuf,
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Print only image ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// Show manifest digests.
    #[arg(long)]
    pub digests: bool,
    /// Don't truncate ids.
    #[arg(long)]
    pub no_trunc: bool,
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

#[derive(Args, Debug)]
pub struct NamesArg {
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct NameArg {
    #[arg(value_name = "IMAGE")]
    pub image: String,
    /// Don't truncate the CREATED BY column.
    #[arg(long)]
    pub no_trunc: bool,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Remove an image that has several tags.
    #[arg(short, long)]
    pub force: bool,
    #[arg(required = true, value_name = "IMAGE")]
    pub images: Vec<String>,
}

#[derive(Args, Debug)]
pub struct TagArgs {
    #[arg(value_name = "SOURCE")]
    pub source: String,
    #[arg(value_name = "TARGET")]
    pub target: String,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove every image, not only untagged ones.
    #[arg(short, long)]
    pub all: bool,
    /// Accepted for docker's command lines (wrun never asks).
    #[arg(short, long)]
    pub force: bool,
}

pub fn run(a: &ImageArgs) -> anyhow::Result<i32> {
    let root = a.data_root.clone().unwrap_or_else(store::default_data_root);
    let store = Store::open(&root)?;
    // Not locked: a pull prints progress lines from its download threads.
    let mut out = std::io::stdout();
    match &a.command {
        ImageCommand::Pull(p) => {
            let r = Reference::parse(&p.reference)?;
            let platform = p.platform.as_deref().map(parse_platform).transpose()?;
            let progress = Progress::for_stdout(p.quiet);
            let img = registry::pull(&store, &r, platform.as_ref(), &p.registry.options(), progress)?;
            if !p.quiet {
                writeln!(out, "Digest: {}", img.digest)?;
            }
            writeln!(out, "{r}")?;
        }
        ImageCommand::Push(p) => {
            let dest = p.destination.as_deref().map(Reference::parse).transpose()?;
            let progress = Progress::for_stdout(p.quiet);
            let d = registry::push(&store, &p.image, dest.as_ref(), &p.registry.options(), progress)?;
            writeln!(out, "{d}")?;
        }
        ImageCommand::Import(i) => {
            let file = i.file.as_ref().or(i.input.as_ref()).expect("clap requires one");
            let opts = ImportOptions {
                name: i.name.as_deref().map(Reference::parse).transpose()?,
                changes: i.change.clone(),
                platform: i.platform.as_deref().map(parse_platform).transpose()?,
            };
            for imp in archive::import(&store, file, &opts)? {
                if i.quiet {
                    writeln!(out, "{}", imp.image.id)?;
                } else if imp.tags.is_empty() {
                    writeln!(out, "Loaded image ID: {}", imp.image.id)?;
                } else {
                    for t in &imp.tags {
                        writeln!(out, "Loaded image: {}", store::familiar(t))?;
                    }
                }
            }
        }
        ImageCommand::Save(s) => archive::save(&store, &s.images, &s.output)?,
        ImageCommand::Ls(l) => ls(&store, l, &mut out)?,
        ImageCommand::Inspect(n) => {
            let mut all = Vec::new();
            for name in &n.images {
                all.push(view::inspect(&store, &store.resolve(name)?));
            }
            writeln!(out, "{}", serde_json::to_string_pretty(&all)?)?;
        }
        ImageCommand::Rm(r) => {
            for name in &r.images {
                for line in store.remove(name, r.force)? {
                    writeln!(out, "{line}")?;
                }
            }
        }
        ImageCommand::Tag(t) => {
            store.tag(&t.source, &Reference::parse(&t.target)?)?;
        }
        ImageCommand::Prune(p) => {
            let (ids, freed) = store.prune(p.all)?;
            if !ids.is_empty() {
                writeln!(out, "Deleted Images:")?;
                for id in ids {
                    writeln!(out, "deleted: {id}")?;
                }
                writeln!(out)?;
            }
            writeln!(out, "Total reclaimed space: {}", human_size(freed.bytes))?;
        }
        ImageCommand::History(h) => history(&store, h, &mut out)?,
        ImageCommand::Mount(m) => {
            let img = store.resolve(&m.image)?;
            writeln!(out, "{}", store.mount(&img, &m.dir)?.display())?;
        }
        ImageCommand::Unmount(d) => store.unmount(&d.dir)?,
        ImageCommand::Sbom(a) => return super::provenance::sbom(&store, a, &mut out),
        ImageCommand::Scan(a) => return super::provenance::scan_cmd(&store, a, &mut out),
        ImageCommand::Sign(a) => return super::trust::sign(a, &mut out),
        ImageCommand::Verify(a) => return super::trust::verify(a, &mut out),
        ImageCommand::Keygen(a) => return super::trust::keygen(a, &mut out),
        ImageCommand::Df => {
            let u = view::usage(&store)?;
            writeln!(
                out,
                "{:<14}{:<8}{:<8}{:<10}RECLAIMABLE",
                "TYPE", "TOTAL", "ACTIVE", "SIZE"
            )?;
            writeln!(
                out,
                "{:<14}{:<8}{:<8}{:<10}{}",
                "Images",
                u.images,
                u.images - u.dangling,
                human_size(u.blob_bytes + u.layer_bytes),
                human_size(u.reclaimable)
            )?;
            writeln!(
                out,
                "{:<14}{:<8}{:<8}{:<10}-",
                "Layers",
                u.layers,
                u.layers,
                human_size(u.layer_bytes)
            )?;
        }
    }
    Ok(0)
}

pub(super) fn parse_platform(s: &str) -> anyhow::Result<Platform> {
    let parts: Vec<&str> = s.split('/').collect();
    match parts.as_slice() {
        [os, arch] | [os, arch, _] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
            os: os.to_string(),
            architecture: arch.to_string(),
            variant: parts.get(2).map(|v| v.to_string()),
        }),
        _ => anyhow::bail!("--platform {s:?}: not os/arch[/variant] (e.g. linux/amd64, wasip1/wasm)"),
    }
}

fn ls(store: &Store, l: &LsArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let rows = view::rows(store, &store.images()?);
    if l.quiet {
        let mut seen = std::collections::BTreeSet::new();
        for r in rows {
            if seen.insert(r.id.clone()) {
                writeln!(
                    out,
                    "{}",
                    if l.no_trunc {
                        r.id.to_string()
                    } else {
                        r.id.short().to_string()
                    }
                )?;
            }
        }
        return Ok(());
    }
    if l.format == Format::Json {
        for r in rows {
            let v = serde_json::json!({
                "Repository": r.repository, "Tag": r.tag, "Digest": r.digest, "ID": r.id,
                "CreatedAt": r.created, "Size": r.size,
            });
            writeln!(out, "{v}")?;
        }
        return Ok(());
    }
    let id = |r: &view::Row| {
        if l.no_trunc {
            r.id.to_string()
        } else {
            r.id.short().to_string()
        }
    };
    let repo_w = rows.iter().map(|r| r.repository.len()).max().unwrap_or(0).max(10) + 3;
    let tag_w = rows.iter().map(|r| r.tag.len()).max().unwrap_or(0).max(3) + 3;
    let id_w = if l.no_trunc { 74 } else { 15 };
    write!(out, "{:<repo_w$}{:<tag_w$}", "REPOSITORY", "TAG")?;
    if l.digests {
        write!(out, "{:<74}", "DIGEST")?;
    }
    writeln!(out, "{:<id_w$}{:<24}SIZE", "IMAGE ID", "CREATED")?;
    for r in &rows {
        write!(out, "{:<repo_w$}{:<tag_w$}", r.repository, r.tag)?;
        if l.digests {
            write!(out, "{:<74}", r.digest.to_string())?;
        }
        writeln!(
            out,
            "{:<id_w$}{:<24}{}",
            id(r),
            ago(r.created.as_deref()),
            human_size(r.size)
        )?;
    }
    Ok(())
}

fn history(store: &Store, h: &NameArg, out: &mut impl Write) -> anyhow::Result<()> {
    let img = store.resolve(&h.image)?;
    writeln!(
        out,
        "{:<15}{:<24}{:<48}{:<10}COMMENT",
        "IMAGE", "CREATED", "CREATED BY", "SIZE"
    )?;
    for r in view::history(store, &img) {
        let by = if h.no_trunc || r.created_by.chars().count() <= 45 {
            r.created_by.clone()
        } else {
            format!("{}…", r.created_by.chars().take(44).collect::<String>())
        };
        writeln!(
            out,
            "{:<15}{:<24}{:<48}{:<10}{}",
            r.image,
            ago(r.created.as_deref()),
            by,
            human_size(r.size),
            r.comment
        )?;
    }
    Ok(())
}

pub use wrun_image::view::human_size;

/// docker's CREATED column: "2 hours ago", "N/A" when unknown.
fn ago(created: Option<&str>) -> String {
    let Some(t) = created.and_then(wrun_sys::timefmt::parse_rfc3339) else {
        return "N/A".into();
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let s = (now - t).max(0);
    let (n, unit) = match s {
        0..60 => return "Less than a minute ago".into(),
        60..3600 => (s / 60, "minute"),
        3600..86_400 => (s / 3600, "hour"),
        86_400..604_800 => (s / 86_400, "day"),
        604_800..2_592_000 => (s / 604_800, "week"),
        2_592_000..31_536_000 => (s / 2_592_000, "month"),
        _ => (s / 31_536_000, "year"),
    };
    let (n, unit) = (n.max(1), unit);
    if n == 1 {
        format!("{} {unit} ago", if unit == "hour" { "An" } else { "1" })
    } else {
        format!("{n} {unit}s ago")
    }
}

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// The registry (host[:port]).
    #[arg(value_name = "REGISTRY")]
    pub registry: String,
    #[arg(short, long)]
    pub username: String,
    /// The password (visible to other users in the process list: prefer --password-stdin).
    #[arg(short, long, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub registry_args: RegistryArgs,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    #[arg(value_name = "REGISTRY")]
    pub registry: String,
    /// The credentials file [default: $REGISTRY_AUTH_FILE, else ~/.docker/config.json].
    #[arg(long, value_name = "FILE")]
    pub authfile: Option<PathBuf>,
}

pub fn login(a: &LoginArgs) -> anyhow::Result<i32> {
    let password = match (&a.password, a.password_stdin) {
        (Some(p), _) => p.clone(),
        (None, true) => {
            let mut s = String::new();
            std::io::stdin().read_line(&mut s)?;
            s.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) => anyhow::bail!("login {}: give the password with --password-stdin or -p", a.registry),
    };
    let creds = wrun_image::auth::Credentials {
        user: a.username.clone(),
        password,
    };
    let opts = a.registry_args.options();
    registry::check_login(&a.registry, &creds, &opts)?;
    let file = wrun_image::auth::auth_file(opts.auth_file.as_deref());
    wrun_image::auth::store(&file, &a.registry, Some(&creds))?;
    println!("Login Succeeded");
    Ok(0)
}

pub fn logout(a: &LogoutArgs) -> anyhow::Result<i32> {
    let file = wrun_image::auth::auth_file(a.authfile.as_deref());
    if wrun_image::auth::store(&file, &a.registry, None)? {
        println!("Removing login credentials for {}", a.registry);
    } else {
        println!("Not logged in to {}", a.registry);
    }
    Ok(0)
}
