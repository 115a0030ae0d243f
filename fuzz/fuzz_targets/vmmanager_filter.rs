#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| plugin_vmmanager::fuzzing::vmmanager_filter(data));
