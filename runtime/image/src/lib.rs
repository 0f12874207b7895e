//! wrun-image: the image store of wrun.
//!
//! What it owns:
//! - `reference`: image references with docker's normalisation (`busybox` is
//!   `docker.io/library/busybox:latest`);
//! - `digest`: sha256 digests, verified on every write and on every read that feeds a container;
//! - `store`: the store on disk, an OCI image layout (`oci-layout`, `index.json`,
//!   `blobs/sha256/`) plus each layer unpacked once, keyed by its diffID, under a lock that
//!   keeps concurrent pulls, imports, runs and prunes from corrupting it, and its garbage
//!   collection;
//! - `unpack`: layer tars unpacked safely (every path resolved by the kernel inside the layer,
//!   never by string), whiteouts turned into overlayfs's form; `targuard` caps a tar's metadata
//!   entries as they pass;
//! - `archive`: `import` (docker save archives, OCI archives, a plain root filesystem tar) and
//!   `save` (an OCI archive that docker can load too);
//! - `registry` and `auth`: `pull` and `push` over the OCI distribution API, credentials in
//!   docker's `config.json` format;
//! - `view`: what `ls`, `inspect`, `history` and `df` show.
//!
//! Dependencies point one way: the front end and the cli use this crate; it uses wrun-sys and
//! knows nothing of containers' lifecycle.

pub mod archive;
pub mod auth;
pub mod digest;
pub mod error;
pub mod layer;
pub mod reference;
pub mod registry;
pub mod store;
pub mod targuard;
pub mod unpack;
pub mod view;

pub use digest::Digest;
pub use error::{Error, Result};
pub use reference::Reference;
pub use store::Store;
