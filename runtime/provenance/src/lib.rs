//! wrun-provenance: where an image came from and what it holds.
//!
//! - `layers`: an image's layers read as overlayfs would merge them (whiteouts, opaque
//!   directories, symlinks resolved across layers by us, never by the kernel), without mounting
//!   anything; every file is read beneath its layer directory with no symlink followed;
//! - `sbom`: the packages an image holds, from its package databases (dpkg, apk), known
//!   binaries (busybox) and wasm modules' own metadata, each with the layer it came from;
//!   written as SPDX 2.3 or CycloneDX 1.5 JSON;
//! - `scan`: that SBOM matched against a local OSV database with each ecosystem's version
//!   ordering (`version`), no network;
//! - `policy` and `trust`: containers' policy.json, enforced on pulls: `sigstore` (cosign's
//!   key-based signatures: sign, store, verify) and `simplesign` (GPG simple signing from
//!   registries.d lookaside storage, checked by gpgv);
//! - `waste`: what one layer adds and a later one deletes (space the image carries for
//!   nothing), for `wrun build`'s warning.
//!
//! The image, its layers and the database are all untrusted input: sizes are capped, parse
//! errors name the file, and nothing here writes outside what the caller asks for.

pub mod layers;
pub mod policy;
pub mod sbom;
pub mod scan;
pub mod sigstore;
pub mod simplesign;
pub mod trust;
pub mod waste;

pub use wrun_image::{Error, Result};
