//! Hardening tests: the real `docker-credential-acr` binary against `acr-testkit`'s loopback
//! fakes, fed malformed input, injected upstream faults, agent kills under load, and every verb
//! with trace logging to prove no secret ever reaches an output. Also the `doctor` command's
//! findings for seeded misconfigurations.

mod bad_input;
mod cold;
mod doctor;
mod faults;
mod leaks;
mod load;
mod proof;
mod trust;
mod util;
