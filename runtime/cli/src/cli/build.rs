//! `wrun build`: an image from a Dockerfile (see `wrun_front::build`).

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use wrun_front::build::{self, BuildOptions};
use wrun_front::container::Containers;
use wrun_image::registry::{self, Progress, RegistryOptions};
use wrun_image::store::Store;
use wrun_image::Reference;

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// The data root of the image store [default: $WRUN_DATA_ROOT, else /var/lib/wrun].
    #[arg(long)]
    pub data_root: Option<PathBuf>,
    /// Name the image NAME[:TAG] (repeatable).
    #[arg(short, long = "tag")]
    pub tags: Vec<String>,
    /// The Dockerfile [default: CONTEXT/Dockerfile].
    #[arg(short, long)]
    pub file: Option<PathBuf>,
    /// A build argument KEY=VALUE (KEY alone: its value from the environment).
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// Build up to this stage.
    #[arg(long)]
    pub target: Option<String>,
    /// Run every step, even those the cache has.
    #[arg(long)]
    pub no_cache: bool,
    /// Pull every FROM image, even one in the store.
    #[arg(long)]
    pub pull: bool,
    /// The network of RUN steps: host (the default, as `docker build --network host`) or none.
    #[arg(long, default_value = "host")]
    pub network: String,
    /// The platform of the FROM images to pull (os/arch).
    #[arg(long)]
    pub platform: Option<String>,
    /// A label KEY=VALUE for the image (repeatable).
    #[arg(long)]
    pub label: Vec<String>,
    /// Print only the image id.
    #[arg(short, long)]
    pub quiet: bool,
    /// Write the image id to this file.
    #[arg(long)]
    pub iidfile: Option<PathBuf>,
    /// Scan the built image for vulnerabilities (with --db) before naming it; with
    /// --fail-on, a finding at or above that severity fails the build and no tag is given.
    #[arg(long)]
    pub scan: bool,
    #[command(flatten)]
    pub scan_opts: super::provenance::ScanOptions,
    #[command(flatten)]
    pub trust: super::trust::TrustArgs,
    /// The build context: the directory COPY and ADD read.
    pub context: PathBuf,
}

pub fn run(a: &BuildArgs) -> anyhow::Result<i32> {
    let root = super::system::data_root(&a.data_root)?;
    let tags = a
        .tags
        .iter()
        .map(|t| Reference::parse(t))
        .collect::<Result<Vec<_>, _>>()?;
    let platform = a.platform.as_deref().map(super::image::parse_platform).transpose()?;
    let st = Store::open(&root)?;
    let cs = Containers::open(&root)?;
    let o = BuildOptions {
        context: a.context.clone(),
        file: a.file.clone(),
        tags,
        build_args: a.build_args.clone(),
        target: a.target.clone(),
        no_cache: a.no_cache,
        network: a.network.clone(),
        labels: a.label.clone(),
        quiet: a.quiet,
        platform: platform.as_ref().map(|p| (p.os.clone(), p.architecture.clone())),
    };
    // RUN steps read nothing: as docker's, their stdin is empty.
    wrun_front::container::run::stdin_from_dev_null()?;
    let base = |name: &str| -> wrun_front::container::Result<wrun_image::store::Image> {
        match st.resolve(name) {
            Err(wrun_image::Error::NotFound(_)) => {}
            Ok(img) if !a.pull => return Ok(img),
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        let r = Reference::parse(name)?;
        Ok(registry::pull(
            &st,
            &r,
            platform.as_ref(),
            &a.trust.options(RegistryOptions::default()),
            Progress::Quiet,
        )?)
    };
    let mut out = std::io::stdout();
    // -q: the steps' output (RUN's included) goes nowhere; the id alone is printed.
    let hush = a.quiet.then(Hush::new).transpose()?;
    let built = build::build(&st, &cs, &o, &base, &mut out);
    drop(hush);
    let built = built?;
    if a.scan {
        // The report goes where the build's output went (nowhere with -q); a failure is
        // the build's error, and the image stays only in the build cache.
        let mut sink: Box<dyn Write> = if a.quiet {
            Box::new(std::io::sink())
        } else {
            Box::new(std::io::stdout())
        };
        let name = o
            .tags
            .first()
            .map_or_else(|| built.image.id.short().to_string(), wrun_image::store::familiar);
        super::provenance::scan_image(
            &st,
            &built.image,
            &name,
            &a.scan_opts,
            super::provenance::ScanFormat::Table,
            &mut sink,
        )?;
    } else if a.scan_opts.db.is_some() || a.scan_opts.fail_on.is_some() {
        anyhow::bail!("--db and --fail-on go with --scan");
    }
    let image = build::publish(&st, &built.image, &o.tags)?;
    if let Some(f) = &a.iidfile {
        std::fs::write(f, image.id.as_str()).map_err(|e| anyhow::anyhow!("--iidfile {}: {e}", f.display()))?;
    }
    if a.quiet {
        println!("{}", image.id);
    } else {
        println!(
            "Successfully built {} ({} steps run, {} from the cache)",
            image.id.short(),
            built.ran,
            built.cached
        );
        for t in &o.tags {
            println!("Successfully tagged {}", wrun_image::store::familiar(t));
        }
    }
    let _ = out.flush();
    Ok(0)
}

/// Our stdout and stderr pointed at /dev/null until dropped (then they are back).
struct Hush([std::os::fd::OwnedFd; 2]);

impl Hush {
    fn new() -> anyhow::Result<Hush> {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        let _ = std::io::stdout().flush();
        let null = std::fs::OpenOptions::new().write(true).open("/dev/null")?;
        // SAFETY: F_DUPFD_CLOEXEC of our stdio gives new fds we own.
        let saved = [1, 2].map(|fd| unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3) });
        if saved.iter().any(|fd| *fd < 0) {
            anyhow::bail!("-q: dup: {}", std::io::Error::last_os_error());
        }
        // SAFETY: new fds from fcntl, ours; dup2 of valid fds onto our stdio.
        let saved = saved.map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
        for fd in [1, 2] {
            // SAFETY: as above.
            if unsafe { libc::dup2(null.as_raw_fd(), fd) } < 0 {
                anyhow::bail!("-q: dup2: {}", std::io::Error::last_os_error());
            }
        }
        Ok(Hush(saved))
    }
}

impl Drop for Hush {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        let _ = std::io::stdout().flush();
        for (fd, saved) in [1, 2].iter().zip(&self.0) {
            // SAFETY: dup2 of a valid saved fd back onto our stdio.
            unsafe { libc::dup2(saved.as_raw_fd(), *fd) };
        }
    }
}
