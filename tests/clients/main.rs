//! Compatibility with real clients nobody here wrote: skopeo (containers/image), the Docker CLI
//! and docker-py's helper driver call `docker-credential-acr` through `credHelpers`, and a real
//! Docker Distribution registry (behind the fake ACR name, see `acr_testkit::RealRegistry`)
//! accepts what they obtain with its answer. Each test asserts the whole exchange: how the client
//! ran the helper (a recording wrapper on `PATH`), which credential shape it presented at
//! `/oauth2/token`, and that the secret was the refresh token the helper got from the exchange.
//! The helper's agent is off except in the one test that proves the auto-started agent serves a
//! real client. A missing client fails the suite: CI installs them.

mod docker_cli;
mod dockerpy;
mod export;
mod k8s_sync;
mod skopeo;
mod statics;
mod util;
