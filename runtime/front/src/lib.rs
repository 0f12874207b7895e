//! wrun-front: the docker-like front end of wrun, what a user of `docker run` types,
//! translated into what the lifecycle library (crate wrun) runs.
//!
//! - `container`: `wrun container run IMAGE` and its verbs (the config built from an image and
//!   docker's flags, the per-container monitor, logs, exec);
//! - `network`: bridge networks from the CNI plugins, `-p`, `wrun network ...`;
//! - `dockerflags`: docker's resource flags (`--cpus`, `-m`, `--pids-limit`, ... into
//!   `linux.resources`), which `wrun update` uses for its sizes too.
//!
//! Dependencies point one way: the cli uses this crate, this crate uses the image store and
//! the lifecycle library, never the reverse.

pub mod build;
pub mod container;
pub mod dockerflags;
pub mod network;
