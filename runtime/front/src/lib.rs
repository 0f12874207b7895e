//! wrun-front: the docker-like front end of wrun, what a user of `docker run` types,
//! translated into what the lifecycle library (crate wrun) runs.
//!
//! Today it owns docker's resource flags (`dockerflags`: `--cpus`, `-m`, `--pids-limit`, ...
//! into `linux.resources`), which `wrun update` uses for its sizes. `wrun container run IMAGE`
//! (the config built from an image and docker's flags, the per-container monitor, health
//! checks) goes here too. Dependencies point one way: the cli uses this crate, this crate uses
//! the image store and the lifecycle library, never the reverse.

pub mod container;
pub mod dockerflags;
