//! One module per resource family of the spec, plus the admin routes.

pub mod admin;
pub mod bricks;
pub mod drives;
pub mod images;
pub mod projects;
pub mod teams;
pub mod vms;
