//! New object ids: the SDK's random (v4) UUIDs from the kernel's random source.

pub use tessera_sdk::ids::{is_uuid, new_uuid};
