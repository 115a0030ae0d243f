//! The plugins built into the `tessera` binary (host/build.rs compiles them
//! to wasm32-wasip2 components and this module embeds them).

macro_rules! embedded {
    ($($name:literal => $file:literal),* $(,)?) => {
        const BUILTIN: &[(&str, &[u8])] = &[
            $(($name, include_bytes!(concat!(env!("TESSERA_PLUGIN_DIR"), "/", $file)))),*
        ];
    };
}

embedded! {
    "cloudapi" => "plugin_cloudapi.wasm",
    "ticrypt" => "plugin_ticrypt.wasm",
    "vmmanager" => "plugin_vmmanager.wasm",
    "fosscloud" => "plugin_fosscloud.wasm",
    "appliance-admin" => "plugin_appliance_admin.wasm",
    "hello" => "hello.wasm",
}

/// The component bytes of a built-in plugin.
pub fn get(name: &str) -> Option<&'static [u8]> {
    BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

pub fn names() -> Vec<&'static str> {
    BUILTIN.iter().map(|(n, _)| *n).collect()
}
