//! The row decoders must never panic on any bytes, in either table or mode, and every row
//! they read is either decoded or quarantined.
#![no_main]

use libfuzzer_sys::fuzz_target;
use marketing_analytics::input::source::decode_text;
use marketing_analytics::input::{RejectSink, TableKind};

fuzz_target!(|data: &[u8]| {
    let (kind, header): (TableKind, &[u8]) = if data.first().is_some_and(|b| b % 2 == 0) {
        (
            TableKind::Clickstream,
            b"userId,eventId,eventType,eventTime,attributes\n",
        )
    } else {
        (
            TableKind::Purchases,
            b"purchaseId,purchaseTime,billingCost,isConfirmed\n",
        )
    };
    let text = [header, data].concat();
    let _ = decode_text(kind, data, b',', "fuzz.csv", None);
    let dir = std::env::temp_dir().join(format!("ma-fuzz-{}", std::process::id()));
    let sink = RejectSink::new(dir.join("rejected.csv"));
    if let Ok((batches, stats)) = decode_text(kind, &text, b',', "fuzz.csv", Some(&sink)) {
        let decoded: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(decoded as u64 + stats.quarantined, stats.rows);
    }
    let _ = std::fs::remove_dir_all(&dir);
});
