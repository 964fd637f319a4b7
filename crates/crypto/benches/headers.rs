//! How header and Content-Type parsing scale (issue 6 item 10): the time per
//! field and per RFC 2231 parameter should stay flat as the input doubles
//! (linear parsing). Prints numbers; asserts nothing.
//!
//!   cargo bench -p sealgate-crypto --bench headers

use sealgate_crypto::mime::{ContentType, HeaderLimits, Message};
use std::hint::black_box;
use std::time::Instant;

fn per_item(n: usize, f: impl Fn() -> usize) -> f64 {
    // Best of five, in nanoseconds per item.
    (0..5)
        .map(|_| {
            let t = Instant::now();
            black_box(f());
            t.elapsed().as_nanos() as f64 / n as f64
        })
        .fold(f64::MAX, f64::min)
}

fn main() {
    println!("RFC 2231 parameters in one Content-Type (distinct names, each continued):");
    for n in [2_500, 5_000, 10_000, 20_000, 40_000] {
        let mut value = String::from("text/plain");
        for i in 0..n {
            value.push_str(&format!("; p{i}*0=\"a\"; p{i}*1*=%41"));
        }
        let ns = per_item(n, || ContentType::parse(black_box(&value)).params.len());
        println!("  {n:>6} parameters: {ns:>8.0} ns per parameter");
    }
    println!("Header fields (tiny, a message of nothing else):");
    for n in [250_000, 500_000, 1_000_000, 2_000_000] {
        let raw = b"a:b\r\n".repeat(n);
        let ns = per_item(n, || {
            Message::parse_limited(black_box(&raw), HeaderLimits::NONE)
                .map(|m| m.headers().len())
                .unwrap_or(0)
        });
        println!(
            "  {n:>8} fields ({:>3} MB): {ns:>6.1} ns per field",
            raw.len() >> 20
        );
    }
    println!("Refusing a 20 MB header bomb at the default limits (10,000 fields, 1 MiB):");
    let bomb = b"a:b\r\n".repeat(4_000_000);
    let limits = HeaderLimits {
        max_bytes: 1 << 20,
        max_fields: 10_000,
    };
    let t = Instant::now();
    let refused = Message::parse_limited(black_box(&bomb), limits).is_err();
    println!(
        "  refused: {refused}, in {:.2} ms",
        t.elapsed().as_secs_f64() * 1000.0
    );
}
