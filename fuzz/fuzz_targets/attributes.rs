//! The attributes parser must never panic, and what it accepts must be stable: parsing the
//! same text twice gives the same values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use marketing_analytics::input::attributes::parse_attributes;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let first = parse_attributes(text);
        let second = parse_attributes(text);
        assert_eq!(first, second);
    }
});
