//! The files under `install/`: systemd units that `systemd-analyze verify` accepts, a kubelet
//! `CredentialProviderConfig` checked field by field the way kubelet decodes it (strict) and
//! whose `matchImages` globs are evaluated with kubelet's own matching rule, a well-formed
//! launchd plist, an idempotent POSIX `install.sh`, the Kubernetes node installer run against
//! fake host roots, and every Kubernetes manifest validated against the OpenAPI schemas
//! (kubernetes-validate). Missing tools fail the suite.

mod completions;
mod kubelet;
mod layout;
mod manifests;
mod node;
mod script;
mod units;
mod util;
