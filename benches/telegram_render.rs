//! Telegram reply rendering cost: Markdown → Telegram HTML, splitting into
//! 4096-unit parts, and both together as a reply is built (split, then each
//! part rendered) for a typical answer (~1.5 KB), a long one (~12 KB, three
//! parts) and a code-heavy one (~20 KB with fenced blocks that must be closed
//! and reopened across parts), plus one long line of markers that never
//! close. Run: `cargo bench --bench telegram_render`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr, missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use valor::channels::telegram::render::markdown_to_html;
use valor::channels::telegram::split::{MESSAGE_LIMIT, split_markdown};

const PARAGRAPH: &str = "We agreed the **launch** is on *March 3*, after the beta feedback round. \
The config lives in `src/config/settings.rs` & the <release> notes go to [the wiki](https://example.com/wiki). \
Ünïcödé and emoji 🚀 count as UTF-16 units too.";

const CODE: &str = "```rust\nfn main() {\n    let answer = 6 * 7;\n    println!(\"{answer} < 100 && ok\");\n}\n```";

fn typical() -> String {
    [PARAGRAPH, "- first point\n- second point with `code`\n- third", PARAGRAPH, CODE, PARAGRAPH].join("\n\n")
}

fn long() -> String {
    (0..40).map(|_| PARAGRAPH).collect::<Vec<_>>().join("\n\n")
}

fn code_heavy() -> String {
    let big_block = format!("```python\n{}```", "print('line with <tags> & ampersands')\n".repeat(400));
    [typical(), big_block, long()].join("\n\n")
}

/// One 4,000-byte line of emphasis markers that never close: every opener
/// looks for a partner (the worst case for a renderer that scans ahead).
fn unclosed() -> String {
    "*a _b ~~c ".repeat(400)
}

fn bench(c: &mut Criterion) {
    for (name, text) in
        [("typical", typical()), ("long", long()), ("code-heavy", code_heavy()), ("unclosed", unclosed())]
    {
        let parts = split_markdown(&text, MESSAGE_LIMIT);
        eprintln!("{name}: {} bytes → {} part(s)", text.len(), parts.len());
        c.bench_function(&format!("render {name}"), |b| b.iter(|| markdown_to_html(black_box(&text))));
        c.bench_function(&format!("split {name}"), |b| b.iter(|| split_markdown(black_box(&text), MESSAGE_LIMIT)));
        c.bench_function(&format!("split + render {name}"), |b| {
            b.iter(|| {
                split_markdown(black_box(&text), MESSAGE_LIMIT)
                    .iter()
                    .map(|part| markdown_to_html(part))
                    .collect::<Vec<_>>()
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
