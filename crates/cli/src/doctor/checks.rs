//! The checks: each turns what it reads (config, files, the agent's status answer, the planner's
//! choice) into findings on the [`Report`](super::render::Report). Network I/O lives in
//! [`super::net`], line formatting in [`super::render`].

pub(in crate::doctor) mod agent;
pub(in crate::doctor) mod cached;
pub(in crate::doctor) mod config;
pub(in crate::doctor) mod exposure;
pub(in crate::doctor) mod files;
pub(in crate::doctor) mod identity;
pub(in crate::doctor) mod registry;
pub(in crate::doctor) mod trust;
