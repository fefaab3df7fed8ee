//! Memory valor gives back, measured as this process's anonymous RSS
//! (`/proc/self/status`); the tests take turns (`ALONE`) so one test's
//! allocations never show up in another's measurement.
//!
//! - The Prometheus recorder keeps every raw histogram value until it is
//!   drained; valor drains it from the housekeeping sampler
//!   (`monitoring::metrics_upkeep`), so a valor nobody scrapes does not grow
//!   by one value per turn forever.
//! - glibc keeps what a burst freed inside its arenas; the housekeeping task
//!   hands it back with `monitoring::allocator::release_free_memory`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

static ALONE: std::sync::Mutex<()> = std::sync::Mutex::new(());

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
    let _alone = ALONE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
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

#[test]
fn the_free_pages_a_burst_leaves_in_the_heap_go_back_to_the_os() {
    let _alone = ALONE.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // A burst: 64 MiB in 1 KiB blocks. Every 16th block outlives it, so the
    // heap cannot shrink from the top: free pages are left between survivors.
    let blocks: Vec<Box<[u8; 1024]>> = (0..65_536u32).map(|index| Box::new([index as u8; 1024])).collect();
    let during = anon_kib();
    let survivors: Vec<Box<[u8; 1024]>> =
        blocks.into_iter().enumerate().filter(|(index, _)| index % 16 == 0).map(|(_, block)| block).collect();
    let after_burst = anon_kib();
    // The control: freeing alone gives (almost) nothing back; this is what valor had to fix.
    assert!(after_burst > during - 16 * 1024, "glibc returned the burst by itself: {during} → {after_burst} KiB");

    valor::monitoring::allocator::release_free_memory();
    let released = anon_kib();
    assert!(
        after_burst - released > 32 * 1024,
        "expected most of the ~60 MiB freed back: {after_burst} → {released} KiB"
    );
    // The survivors are intact.
    assert!(
        survivors.iter().enumerate().all(|(index, block)| block[0] == (index * 16) as u8 && block[1023] == block[0])
    );
}
