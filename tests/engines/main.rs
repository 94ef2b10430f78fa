//! Real container engines drive the helper: a private `dockerd` (Debian's `docker.io`, with the
//! Docker CLI of the same package) pulls, pushes, logs in and builds through `credHelpers`, and a
//! private `containerd` pulls with the kubelet provider's answers, all against the real Docker
//! Distribution registry behind the fake ACR (see `acr_testkit::{Dockerd, Containerd}` for how
//! the engines are isolated). Each flow asserts which credential the registry's token endpoint
//! saw: a refresh token our exchange minted, or the stored static login. One daemon serves the
//! flows that can share it; a missing engine fails the suite (CI installs them).

// The client suite's fixture (fake, world, real registry holding one image, helper spy).
#[allow(dead_code)]
#[path = "../clients/util.rs"]
mod clients;
mod containerd;
mod docker;
mod util;
