//! The Prometheus recorder keeps every raw histogram value until it is
//! drained; valor drains it from the housekeeping sampler
//! (`monitoring::metrics_upkeep`), so a valor nobody scrapes does not grow
//! by one value per turn forever. Measured as this process's anonymous RSS
//! (`/proc/self/status`), so this file holds one test only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

/// RssAnon of this process in KiB.
fn anon_kib() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("RssAnon:"))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .expect("RssAnon in /proc/self/status")
}

/// Record `values` turn durations, draining every 10,000 when `upkeep`; returns the RssAnon growth in KiB.
fn growth_recording(values: usize, upkeep: bool) -> i64 {
    let before = anon_kib();
    for index in 0..values {
        metrics::histogram!("valor_turn_seconds").record((index % 1000) as f64 / 100.0);
        if upkeep && index % 10_000 == 0 {
            valor::monitoring::metrics_upkeep();
        }
    }
    valor::monitoring::metrics_upkeep();
    anon_kib() - before
}

#[test]
fn histogram_values_are_folded_so_memory_stays_flat_however_many_turns() {
    valor::monitoring::metrics_handle().expect("the recorder installs");
    // Warm up: the histogram's summary and the allocator's arenas exist before measuring.
    growth_recording(200_000, true);

    let drained = growth_recording(2_000_000, true);
    // The control: the same values with nobody draining them (what valor did
    // before) keep ~8 bytes each, ~16 MiB for two million; this proves the
    // measurement sees a leak of this kind.
    let kept = {
        let before = anon_kib();
        for index in 0..2_000_000 {
            metrics::histogram!("valor_turn_seconds").record((index % 1000) as f64 / 100.0);
        }
        anon_kib() - before
    };
    assert!(kept > 8 * 1024, "two million undrained values should cost megabytes, grew {kept} KiB");
    assert!(drained < 1024, "two million drained values grew RssAnon by {drained} KiB");

    // Nothing recorded is lost by draining: the summary counts every value.
    let rendered = valor::monitoring::metrics_handle().unwrap().render();
    let count = rendered
        .lines()
        .find_map(|line| line.strip_prefix("valor_turn_seconds_count "))
        .and_then(|count| count.trim().parse::<u64>().ok())
        .expect("valor_turn_seconds_count in the rendered metrics");
    assert_eq!(count, 4_200_000);
}
