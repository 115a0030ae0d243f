//! Logging into the kernel's tracing output. The macros skip formatting when
//! the level is off.

use crate::bindings::tessera::kernel::log as wit;
pub use crate::bindings::tessera::kernel::log::Level;

pub fn enabled(level: Level) -> bool {
    wit::enabled(level)
}

pub fn log(level: Level, message: &str) {
    wit::log(level, message)
}

#[macro_export]
macro_rules! log_at {
    ($level:expr, $($arg:tt)+) => {
        if $crate::log::enabled($level) {
            $crate::log::log($level, &format!($($arg)+));
        }
    };
}

#[macro_export]
macro_rules! debug { ($($arg:tt)+) => { $crate::log_at!($crate::log::Level::Debug, $($arg)+) }; }
#[macro_export]
macro_rules! info { ($($arg:tt)+) => { $crate::log_at!($crate::log::Level::Info, $($arg)+) }; }
#[macro_export]
macro_rules! warn { ($($arg:tt)+) => { $crate::log_at!($crate::log::Level::Warn, $($arg)+) }; }
#[macro_export]
macro_rules! error { ($($arg:tt)+) => { $crate::log_at!($crate::log::Level::Error, $($arg)+) }; }
