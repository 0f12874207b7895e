//! `wrun image pull` and `push`: the OCI distribution API through oci-client, over HTTPS, or
//! plain HTTP for a loopback registry or one named with `--insecure-registry`. Anonymous,
//! basic and bearer-token auth (oci-client fetches the token with the stored credentials).
//!
//! A pull verifies everything before it is stored: the manifest against the digest it was
//! asked by (or the registry's), the config and each layer against the manifest's digests, and
//! each unpacked layer against the config's diffIDs. Layers already in the store are not
//! downloaded again; the others download concurrently into the staging directory, with a
//! progress bar each on a terminal (a line each otherwise). Nothing is committed until all of
//! it checks out; a failed or killed pull leaves only staging, removed by the next commit.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::Client;

use crate::archive::{select_platform, wasm_file_name};
use crate::auth;
use crate::digest::{Digest, HashingWriter};
use crate::reference::Reference;
use crate::store::oci::{self, Descriptor, Index, Manifest, Platform};
use crate::store::{Image, Store};
use crate::{Error, Result};

pub mod artifact;
mod manifest;
mod push;
pub use manifest::MAX_MANIFEST;
pub use push::push;

/// How a pull shows its progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// A bar per layer (a terminal).
    Bars,
    /// A line per layer event (not a terminal).
    Lines,
    /// Nothing but the result.
    Quiet,
}

impl Progress {
    /// Bars on a terminal, lines otherwise, nothing with `quiet`.
    pub fn for_stdout(quiet: bool) -> Progress {
        match (quiet, std::io::stdout().is_terminal()) {
            (true, _) => Progress::Quiet,
            (false, true) => Progress::Bars,
            (false, false) => Progress::Lines,
        }
    }
}

/// What a pull or push needs to reach the registry.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Registries (host[:port]) spoken to over plain HTTP besides loopback ones.
    pub insecure: Vec<String>,
    /// The credentials file (`--authfile`); see `auth::auth_file`.
    pub auth_file: Option<PathBuf>,
    /// The trust check of a pull: called with the reference and the digest of the manifest it
    /// resolved to (an index's, for a multi-platform image) before anything is downloaded or
    /// stored; its error ends the pull.
    pub verify: Option<Verifier>,
}

/// A pull's trust check (see `RegistryOptions::verify`).
#[derive(Clone)]
pub struct Verifier(pub Arc<VerifyFn>);

/// The check itself: the reference pulled and the manifest digest it resolved to.
pub type VerifyFn = dyn Fn(&Reference, &Digest) -> Result<()> + Send + Sync;

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Verifier")
    }
}

impl RegistryOptions {
    fn plain_http(&self, registry: &str) -> bool {
        let host = match registry.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => registry,
        };
        matches!(host, "localhost" | "127.0.0.1" | "[::1]")
            || host.starts_with("127.")
            || self.insecure.iter().any(|i| i == registry || i == host)
    }

    fn client(&self, registry: &str) -> Client {
        // Once per process: rustls needs a crypto provider, and ring is the one linked.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Client::new(ClientConfig {
            protocol: if self.plain_http(registry) {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            platform_resolver: None,
            max_concurrent_download: 4,
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            user_agent: concat!("wrun/", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        })
    }

    /// The HTTP client of the manifest requests (see `manifest`), set up as `client`'s.
    fn http(&self) -> Result<reqwest::Client> {
        reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .user_agent(concat!("wrun/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::invalid(format!("set up the HTTP client: {e}")))
    }

    /// `oref`'s manifest from `r`'s registry (at most `MAX_MANIFEST` bytes) and the
    /// registry's `Docker-Content-Digest`.
    async fn manifest(
        &self,
        client: &Client,
        r: &Reference,
        oref: &oci_client::Reference,
        auth: &RegistryAuth,
    ) -> Result<(Vec<u8>, Option<String>)> {
        let http = self.http()?;
        match manifest::fetch(client, &http, self.plain_http(&r.domain), r, oref, auth, &ACCEPT).await {
            manifest::Fetched::Manifest(b, d) => Ok((b, d)),
            manifest::Fetched::Client(e) => Err(registry_error(r, e)),
            manifest::Fetched::Failed(e) => Err(e),
        }
    }

    fn auth(&self, registry: &str) -> Result<RegistryAuth> {
        let file = auth::auth_file(self.auth_file.as_deref());
        Ok(match auth::lookup(&file, registry)? {
            Some(c) => RegistryAuth::Basic(c.user, c.password),
            None => RegistryAuth::Anonymous,
        })
    }
}

fn oci_ref(r: &Reference) -> oci_client::Reference {
    match (&r.tag, &r.digest) {
        (_, Some(d)) => oci_client::Reference::with_digest(r.domain.clone(), r.path.clone(), d.to_string()),
        (Some(t), None) => oci_client::Reference::with_tag(r.domain.clone(), r.path.clone(), t.clone()),
        (None, None) => oci_client::Reference::with_tag(r.domain.clone(), r.path.clone(), "latest".into()),
    }
}

/// A registry error as one line naming the registry and the cause, with its kind.
fn registry_error(r: &Reference, e: OciDistributionError) -> Error {
    let what = format!("registry {}", r.domain);
    let envelope = |env: &oci_client::errors::OciEnvelope| {
        env.errors
            .iter()
            .map(|x| {
                if x.message.is_empty() {
                    format!("{:?}", x.code)
                } else {
                    x.message.clone()
                }
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    match &e {
        OciDistributionError::ImageManifestNotFoundError(_) => {
            return Error::NotInRegistry(format!("{r}: not in {what}"));
        }
        OciDistributionError::RegistryError { envelope: env, .. } => {
            let codes: Vec<String> = env.errors.iter().map(|x| format!("{:?}", x.code)).collect();
            let msg = envelope(env);
            if codes.iter().any(|c| c.contains("Unknown")) {
                return Error::NotInRegistry(format!("{r}: not in {what} ({msg})"));
            }
            if codes.iter().any(|c| c.contains("Unauthorized") || c.contains("Denied")) {
                return Error::Refused(format!("{what}: access to {} refused: {msg}", r.name()));
            }
            return Error::Invalid(format!("{what}: {msg}"));
        }
        OciDistributionError::AuthenticationFailure(_) | OciDistributionError::UnauthorizedError { .. } => {
            return Error::Refused(format!("{what}: authentication failed for {}: {e}", r.name()));
        }
        _ => {}
    }
    let mut msg = e.to_string();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(&e);
    while let Some(s) = src {
        let t = s.to_string();
        if !msg.contains(&t) {
            msg = format!("{msg}: {t}");
        }
        src = s.source();
    }
    Error::Invalid(format!("{what}: {msg}"))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Error::io("start the download threads", e))
}

const ACCEPT: [&str; 4] = [
    oci::OCI_MANIFEST,
    oci::OCI_INDEX,
    oci::DOCKER_MANIFEST,
    oci::DOCKER_LIST,
];

/// Pull `r` into the store; returns the image (tagged `r` when `r` has a tag).
pub fn pull(
    store: &Store,
    r: &Reference,
    platform: Option<&Platform>,
    opts: &RegistryOptions,
    progress: Progress,
) -> Result<Image> {
    pull_inner(store, r, platform, opts, progress).map_err(|e| e.within(format!("pull {r}")))
}

fn pull_inner(
    store: &Store,
    r: &Reference,
    platform: Option<&Platform>,
    opts: &RegistryOptions,
    progress: Progress,
) -> Result<Image> {
    let client = opts.client(&r.domain);
    let auth = opts.auth(&r.domain)?;
    let oref = oci_ref(r);
    let rt = runtime()?;
    let (bytes, digest, top) = rt.block_on(async {
        let (mut bytes, header_digest) = opts.manifest(&client, r, &oref, &auth).await?;
        let mut digest = Digest::of(&bytes);
        if let Some(want) = &r.digest {
            want.verify(&digest, "manifest")?;
        } else if let Some(Ok(h)) = header_digest.as_deref().map(Digest::parse) {
            h.verify(&digest, "manifest (the registry's Docker-Content-Digest)")?;
        }
        let v: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| Error::invalid(format!("manifest {digest}: {e}")))?;
        let top = digest.clone();
        if v.get("manifests").is_some() {
            let idx: Index = serde_json::from_value(v).map_err(|e| Error::invalid(format!("index {digest}: {e}")))?;
            let d = select_platform(&idx, platform)?.digest.clone();
            let by_digest = oci_client::Reference::with_digest(r.domain.clone(), r.path.clone(), d.to_string());
            let (b, _) = opts.manifest(&client, r, &by_digest, &auth).await?;
            d.verify(&Digest::of(&b), format!("manifest {d} of the index"))?;
            bytes = b;
            digest = d;
        }
        Ok::<_, Error>((bytes, digest, top))
    })?;
    // The trust policy decides before anything is downloaded or stored.
    if let Some(v) = &opts.verify {
        (v.0)(r, &top)?;
    }
    rt.block_on(async {
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| Error::invalid(format!("manifest {digest}: {e}")))?;
        let mut staged = store.stage()?;
        // What the store has is not written again (each staged blob costs an fsync).
        if !store.has_blob(&digest) {
            staged.add_bytes(&bytes, "manifest")?;
        }
        if manifest.config.size > crate::archive::MAX_JSON {
            return Err(Error::invalid(format!(
                "config {}: {} bytes, more than a config may have ({})",
                manifest.config.digest,
                manifest.config.size,
                crate::archive::MAX_JSON
            )));
        }
        let config = fetch_small(&client, &oref, &manifest.config)
            .await
            .map_err(|e| registry_error(r, e))??;
        manifest.config.digest.verify(&Digest::of(&config), "config")?;
        if !store.has_blob(&manifest.config.digest) {
            staged.add_bytes(&config, "config")?;
        }
        let cfg: serde_json::Value = serde_json::from_slice(&config)
            .map_err(|e| Error::invalid(format!("config {}: {e}", manifest.config.digest)))?;
        // A single-platform image is the platform its config says: one asked for otherwise is
        // refused, as docker refuses it, rather than run on the wrong one.
        crate::archive::check_platform(&cfg, platform)?;

        // What each layer becomes: the diffID its tar must have (None: a wasm layer).
        let plans = crate::store::layer_diff_ids(&manifest, &cfg)?;

        // Each layer the store lacks is downloaded and then unpacked by a task of its own, so
        // downloads, checks and unpacking overlap across layers.
        let bars = indicatif::MultiProgress::new();
        if progress != Progress::Bars {
            bars.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        let mut tasks = tokio::task::JoinSet::new();
        // At most 4 layers in flight: a manifest of hundreds of layers must not start hundreds
        // of downloads and unpacking threads.
        let slots = Arc::new(tokio::sync::Semaphore::new(4));
        // Unpacking threads still running: a blocking task cannot be aborted, so a failed pull
        // waits for these (and only these) before its staging directory goes.
        let unpacking = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        for (i, (l, diff_id)) in manifest.layers.iter().zip(&plans).enumerate() {
            let have_blob = store.has_blob(&l.digest);
            let need_unpack = match diff_id {
                Some(d) => !store.has_layer(d),
                None => false,
            };
            if have_blob {
                if progress == Progress::Lines {
                    println!("{}: already in the store", l.digest.short());
                }
                if !need_unpack {
                    continue;
                }
            }
            let path = if have_blob {
                store.blob_path(&l.digest)
            } else {
                staged.reserve()
            };
            let dir = if need_unpack {
                Some(staged.reserve_layer_dir()?)
            } else {
                None
            };
            let bar = bars.add(indicatif::ProgressBar::new(l.size));
            bar.set_style(
                indicatif::ProgressStyle::with_template("{prefix}: {bar:30} {bytes}/{total_bytes} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_prefix(l.digest.short().to_string());
            let (client, oref, l, diff_id, r) = (client.clone(), oref.clone(), l.clone(), diff_id.clone(), r.clone());
            let slots = slots.clone();
            let unpacking = unpacking.clone();
            tasks.spawn(async move {
                let _slot = slots
                    .acquire_owned()
                    .await
                    .map_err(|e| Error::invalid(format!("download slots: {e}")))?;
                let unpacked = if !have_blob {
                    // Unpacked as it arrives: the download tees its bytes to an unpacking
                    // thread, so a layer is ready when its last byte is.
                    let (tx, unpacking) = match dir {
                        Some(dir) => {
                            let (tx, rx) = std::sync::mpsc::sync_channel::<bytes::Bytes>(64);
                            let (what, diff_id) = (format!("layer {}", l.digest), diff_id.clone());
                            let live = Live::new(&unpacking);
                            let h = tokio::task::spawn_blocking(move || {
                                let _live = live;
                                let r = ChannelReader {
                                    rx,
                                    cur: bytes::Bytes::new(),
                                };
                                crate::store::unpack_reader(r, &dir, diff_id.as_ref(), &what).map(|u| (dir, u))
                            });
                            (Some(tx), Some(h))
                        }
                        None => (None, None),
                    };
                    let dl = download(&client, &oref, &l, &path, &bar, progress, tx).await;
                    let u = match unpacking {
                        Some(h) => Some(
                            h.await
                                .map_err(|e| Error::invalid(format!("an unpack task failed: {e}")))?,
                        ),
                        None => None,
                    };
                    // Wrong bytes are reported as such (a digest mismatch) before what they
                    // did to the unpacking; a bad tar that stopped the download is reported
                    // by the unpacking.
                    dl.map_err(|e| registry_error(&r, e))??;
                    let u = u.transpose()?;
                    if progress == Progress::Lines {
                        println!("{}: downloaded {} bytes", l.digest.short(), l.size);
                    }
                    u
                } else {
                    match dir {
                        Some(dir) => {
                            bar.set_message("unpacking");
                            let (p, what) = (path.clone(), format!("layer {}", l.digest));
                            // A stored blob is checked as it is unpacked; a downloaded one was
                            // checked as it was written.
                            let check = have_blob.then(|| l.digest.clone());
                            let live = Live::new(&unpacking);
                            let u = tokio::task::spawn_blocking(move || {
                                let _live = live;
                                crate::store::unpack_into(&p, &dir, check.as_ref(), diff_id.as_ref(), &what)
                                    .map(|u| (dir, u))
                            })
                            .await
                            .map_err(|e| Error::invalid(format!("an unpack task failed: {e}")))??;
                            Some(u)
                        }
                        None => None,
                    }
                };
                bar.finish_with_message("done");
                Ok::<_, Error>((i, (!have_blob).then_some(path), unpacked))
            });
        }
        // On the first failure the other downloads are aborted (a registry that fails one
        // layer and trickles another must not hold the error back), and the unpacking threads
        // they fed, which end once their channel closes, are waited for: one still writing when
        // the staging directory is removed would leave its files.
        let mut results = Vec::new();
        while let Some(done) = tasks.join_next().await {
            match done.map_err(|e| Error::invalid(format!("a download task failed: {e}"))) {
                Ok(Ok(r)) => results.push(r),
                Ok(Err(e)) | Err(e) => {
                    tasks.abort_all();
                    while tasks.join_next().await.is_some() {}
                    while unpacking.load(std::sync::atomic::Ordering::SeqCst) > 0 {
                        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                    }
                    return Err(e);
                }
            }
        }
        drop(bars);
        results.sort_by_key(|(i, _, _)| *i);
        for (i, path, unpacked) in results {
            if let Some(p) = path {
                staged.adopt_written(&p, &manifest.layers[i].digest);
            }
            if let Some((dir, u)) = unpacked {
                staged.adopt_layer(dir, &u);
            }
        }
        for l in &manifest.layers {
            let key = crate::store::wasm_layer_key(&l.digest);
            if oci::is_wasm_layer(&l.media_type) && !store.has_layer(&key) {
                let blob = if store.has_blob(&l.digest) {
                    store.blob_path(&l.digest)
                } else {
                    staged
                        .path_of(&l.digest)
                        .ok_or_else(|| Error::invalid(format!("layer {}: not downloaded", l.digest)))?
                };
                staged.wasm_layer(&blob, &key, &wasm_file_name(l))?;
            }
        }
        let tags: Vec<Reference> = r.tag.iter().map(|t| r.with_tag(t)).collect();
        store.commit(staged, &digest, &tags)
    })
}

async fn download(
    client: &Client,
    oref: &oci_client::Reference,
    l: &Descriptor,
    path: &std::path::Path,
    bar: &indicatif::ProgressBar,
    progress: Progress,
    mut tee: Option<std::sync::mpsc::SyncSender<bytes::Bytes>>,
) -> std::result::Result<Result<()>, OciDistributionError> {
    let desc = oci_client::manifest::OciDescriptor {
        media_type: l.media_type.clone(),
        digest: l.digest.to_string(),
        size: l.size as i64,
        ..Default::default()
    };
    if progress == Progress::Lines {
        println!("{}: downloading {} bytes", l.digest.short(), l.size);
    }
    let mut s = client.pull_blob_stream(oref, &desc).await?;
    let file = std::fs::File::create(path)?;
    let mut f = HashingWriter::new(std::io::BufWriter::with_capacity(256 * 1024, file));
    let mut got = 0u64;
    while let Some(chunk) = s.stream.next().await {
        let chunk = chunk?;
        got += chunk.len() as u64;
        if got > l.size {
            // More bytes than the manifest says: not this layer, whatever they hash to.
            return Ok(Err(Error::invalid(format!(
                "layer {}: the registry sent more than its {} bytes",
                l.digest, l.size
            ))));
        }
        f.write_all(&chunk)?;
        bar.inc(chunk.len() as u64);
        // A closed channel means the unpacking failed; the download still completes, so
        // wrong bytes are told apart from a bad tar by the digest.
        if tee.as_ref().is_some_and(|t| t.send(chunk).is_err()) {
            tee = None;
        }
    }
    drop(tee);
    let (w, got, _) = f.finish();
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    // Checked here too, on the bytes as written, whatever the client checked on the wire.
    Ok(l.digest.verify(&got, format!("layer {}", l.digest)))
}

/// A small blob (a config), no more than its descriptor's size, checked against its digest.
async fn fetch_small(
    client: &Client,
    oref: &oci_client::Reference,
    d: &Descriptor,
) -> std::result::Result<Result<Vec<u8>>, OciDistributionError> {
    let desc = oci_client::manifest::OciDescriptor {
        media_type: d.media_type.clone(),
        digest: d.digest.to_string(),
        size: d.size as i64,
        ..Default::default()
    };
    let mut s = client.pull_blob_stream(oref, &desc).await?;
    let mut out = Vec::with_capacity(d.size as usize);
    while let Some(chunk) = s.stream.next().await {
        out.extend_from_slice(&chunk?);
        if out.len() as u64 > d.size {
            return Ok(Err(Error::invalid(format!(
                "config {}: the registry sent more than its {} bytes",
                d.digest, d.size
            ))));
        }
    }
    Ok(d.digest.verify(&Digest::of(&out), "config").map(|()| out))
}

/// The bytes of a download as a `Read`, for the unpacking thread.
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<bytes::Bytes>,
    cur: bytes::Bytes,
}

impl std::io::Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.recv() {
                Ok(b) => self.cur = b,
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        bytes::Buf::advance(&mut self.cur, n);
        Ok(n)
    }
}

/// Check `creds` against `registry` (a manifest request of a repository that need not exist:
/// 401 means the credentials are refused, anything else that they were taken).
pub fn check_login(registry: &str, creds: &auth::Credentials, opts: &RegistryOptions) -> Result<()> {
    let r = Reference::parse(&format!("{registry}/wrun-login-check:latest"))?;
    let client = opts.client(registry);
    let auth = RegistryAuth::Basic(creds.user.clone(), creds.password.clone());
    let rt = runtime()?;
    rt.block_on(async {
        match opts.manifest(&client, &r, &oci_ref(&r), &auth).await {
            Ok(_) | Err(Error::NotInRegistry(_)) => Ok(()),
            Err(e) => Err(e),
        }
    })
    .map_err(|e| e.within(format!("login {registry}")))
}

/// One running unpacking thread, counted while it lives.
struct Live(Arc<std::sync::atomic::AtomicUsize>);

impl Live {
    fn new(n: &Arc<std::sync::atomic::AtomicUsize>) -> Live {
        n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Live(n.clone())
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}
