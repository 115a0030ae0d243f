//! End-to-end tests: the real `tessera` binary on a loopback port, spoken to
//! over real HTTP.

mod harness;

mod appliance_admin;
mod auth;
mod cli;
mod cloudapi;
mod compute;
mod config_errors;
mod crash;
mod files;
mod fosscloud;
mod hostile;
mod identity_cli;
mod jobs;
mod kernel_routes;
mod lifecycle;
mod matrix;
mod qemu;
mod routing;
mod soak;
mod sockets;
mod storage;
mod ticrypt;
mod vmmanager;
