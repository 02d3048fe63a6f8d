//! Deterministic random inputs for the parsers (a short, always-on cousin of the cargo-fuzz
//! targets in `fuzz/`): no input may panic, and every row read is decoded or quarantined.

use marketing_analytics::input::attributes::parse_attributes;
use marketing_analytics::input::source::decode_text;
use marketing_analytics::input::{RejectSink, TableKind};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Random text biased towards the characters that matter to the parsers.
fn noise(rng: &mut ChaCha8Rng, len: usize) -> Vec<u8> {
    const ALPHABET: &[u8] =
        b"{}[]'\",:\\ \r\n\t0123456789.-+eETrueFalsNonul_idcampaignchnelpurchase\xff\xc3";
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
        .collect()
}

#[test]
fn attributes_parser_never_panics() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for _ in 0..20_000 {
        let len = rng.random_range(0..40);
        let bytes = noise(&mut rng, len);
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse_attributes(&text);
    }
}

#[test]
fn row_decoders_never_panic_and_account_for_every_row() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let dir = tempfile::tempdir().unwrap();
    for i in 0..2_000 {
        let (kind, header): (TableKind, &[u8]) = if i % 2 == 0 {
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
        let len = rng.random_range(0..300);
        let text = [header, &noise(&mut rng, len)].concat();
        let _ = decode_text(kind, &text, b',', "noise.csv", None);
        let sink = RejectSink::new(dir.path().join(format!("{i}.csv")));
        if let Ok((batches, stats)) = decode_text(kind, &text, b',', "noise.csv", Some(&sink)) {
            let decoded: usize = batches.iter().map(|b| b.num_rows()).sum();
            assert_eq!(decoded as u64 + stats.quarantined, stats.rows, "input {i}");
        }
    }
}
