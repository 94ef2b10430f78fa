//! End-to-end tests: the real `docker-credential-acr` binary, driven over stdin exactly as docker
//! and other clients drive it, against the loopback HTTPS fakes of Entra ID and ACR in
//! `acr-testkit`, in a temp world (HOME, XDG dirs, DOCKER_CONFIG) with `/etc/hosts` pointing the
//! Azure names at the fake inside a private mount namespace.

mod agent;
mod configure;
mod get;
mod identities;
mod kubelet;
mod logins;
mod proxy;
mod signin;
mod static_client;
mod thin;
mod util;
mod verbs;
