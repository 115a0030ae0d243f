#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| plugin_appliance_admin::fuzzing::appliance_settings(data));
