//! `wrun build`: images from a Dockerfile. Today the Dockerfile parser (`dockerfile`); the
//! builder (stages, RUN in wrun containers, layers diffed and written, the cache) comes next.

pub mod dockerfile;
