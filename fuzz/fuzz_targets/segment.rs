#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| fastrec_fuzz::harness::segment(data));
