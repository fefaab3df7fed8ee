//! Load harness: the release `valor serve` binary, as its own process,
//! against a fake Telegram Bot API and a fake Anthropic model (both in this
//! process, speaking the real wire protocols). N chats (whitelisted users,
//! optionally some groups) each send M messages, one at a time, waiting for
//! the reply before the next (plus `--think-ms`).
//!
//! Run: `bash scripts/load.sh --chats 1000` (builds the release binary, then
//! `cargo run --release --example load -- …`). See `--help` for the knobs.
//!
//! Printed: valor's added latency per turn — (a) update handed out by
//! getUpdates → model request received, (b) model's last token sent →
//! the reply's sendMessage received, split into the wait Telegram's limits
//! force (pacing: at most 30 messages/s overall, 1/s per chat, 20/min per
//! group) and the rest (valor's own delay) — as p50/p95/p99; throughput;
//! valor's RSS (`/proc/<pid>/status`) at idle, peak under load, after
//! warm-up and after the run; lost and duplicated replies; limit violations.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod model;
mod telegram;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use tokio::time::Instant;

use model::FakeModel;
use telegram::FakeTelegram;

#[derive(Debug, Parser)]
#[command(about = "Drive a real valor process with simulated Telegram chats and a fake model")]
struct Args {
    /// Chats writing to the bot at the same time.
    #[arg(long, default_value_t = 1000)]
    chats: usize,
    /// Messages each chat sends (the next one after the previous reply).
    #[arg(long, default_value_t = 1)]
    messages: usize,
    /// How many of the chats are groups (handled as `dev_groups`), the rest private chats.
    #[arg(long, default_value_t = 0)]
    groups: usize,
    /// Model time before the first token.
    #[arg(long, default_value_t = 500)]
    model_latency_ms: u64,
    /// Model time between tokens.
    #[arg(long, default_value_t = 10)]
    token_gap_ms: u64,
    /// Tokens (words) per answer; answers stay short, so no streamed preview is sent.
    #[arg(long, default_value_t = 8)]
    tokens: usize,
    /// A user's pause between a reply and their next message.
    #[arg(long, default_value_t = 0)]
    think_ms: u64,
    /// Network round trip added to every Bot API answer (api.telegram.org is tens of ms away).
    #[arg(long, default_value_t = 0)]
    bot_api_rtt_ms: u64,
    /// Spread the chats' first messages over this long (0: all at once).
    #[arg(long, default_value_t = 0)]
    ramp_ms: u64,
    /// A message without a reply after this long counts as lost.
    #[arg(long, default_value_t = 600)]
    reply_timeout_secs: u64,
    /// Replies received before the "after warm-up" RSS sample (default: a tenth of all turns, at most 1000).
    #[arg(long)]
    warmup_turns: Option<usize>,
    /// valor's `resources.max_active_turns` (its default, 32, would answer most of a burst "busy").
    #[arg(long, default_value_t = 100_000)]
    max_active_turns: u64,
    /// The valor binary (default: `valor` next to this example's directory, i.e. target/release/valor).
    #[arg(long)]
    valor_bin: Option<PathBuf>,
    /// An extra environment variable for the valor child, `NAME=VALUE` (repeatable),
    /// e.g. `--valor-env MALLOC_ARENA_MAX=2` to tell heap fragmentation from retention.
    #[arg(long = "valor-env", value_parser = parse_env_pair)]
    valor_env: Vec<(String, String)>,
}

fn parse_env_pair(pair: &str) -> Result<(String, String), String> {
    match pair.split_once('=') {
        Some((name, value)) if !name.is_empty() => Ok((name.to_owned(), value.to_owned())),
        _ => Err(format!("expected NAME=VALUE, got {pair:?}")),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.chats > 0 && args.messages > 0, "--chats and --messages must be at least 1");
    anyhow::ensure!(args.groups <= args.chats, "--groups cannot exceed --chats");
    let bin = match &args.valor_bin {
        Some(bin) => bin.clone(),
        None => default_bin()?,
    };
    anyhow::ensure!(bin.is_file(), "no valor binary at {} (run `cargo build --release` first)", bin.display());

    let model = FakeModel::start(
        Duration::from_millis(args.model_latency_ms),
        Duration::from_millis(args.token_gap_ms),
        args.tokens.max(1),
    )
    .await?;
    let fake = FakeTelegram::start(Duration::from_millis(args.bot_api_rtt_ms)).await?;
    let chats: Vec<(i64, i64)> = (0..args.chats)
        .map(|index| {
            let user = 10_000 + index as i64;
            let chat = if index < args.groups { -1_000_000_000_000 - index as i64 } else { user };
            (chat, user)
        })
        .collect();
    let work = tempfile::tempdir()?;
    let config = work.path().join("valor.toml");
    std::fs::write(&config, valor_config(&args, work.path(), &chats))?;
    let log_path = work.path().join("valor.log");
    let log = std::fs::File::create(&log_path)?;
    let mut child = tokio::process::Command::new(&bin)
        .arg("serve")
        .current_dir(work.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", work.path())
        .env("VALOR_CONFIG", &config)
        .env("VALOR_HTTP_ADDR", "127.0.0.1:0")
        .env("ANTHROPIC_API_KEY", "sk-ant-load-harness")
        .env("ANTHROPIC_BASE_URL", &model.url)
        .env("TELEGRAM_BOT_TOKEN", telegram::TOKEN)
        .env("TELEGRAM_API_URL", &fake.url)
        .envs(args.valor_env.iter().map(|(name, value)| (name, value)))
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let pid = child.id().context("valor exited at once")?;

    // Ready: valor is long-polling.
    let started = Instant::now();
    while !fake.calls().iter().any(|(method, _)| method == "getUpdates") {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(20),
            "valor did not start polling; log: {}",
            tail(&log_path)
        );
        if let Ok(Some(status)) = child.try_wait() {
            anyhow::bail!("valor exited ({status}); log: {}", tail(&log_path));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle = Memory::read(pid)?;
    let rss_idle = idle.rss;

    let total = args.chats * args.messages;
    let warmup = args.warmup_turns.unwrap_or((total / 10).clamp(1, 1000));
    let replied = Arc::new(AtomicUsize::new(0));
    let rss_peak = Arc::new(AtomicU64::new(rss_idle));
    let rss_warm = Arc::new(std::sync::Mutex::new(None));
    let done = tokio_util::sync::CancellationToken::new();
    let sampler =
        tokio::spawn(sample_rss(pid, done.clone(), replied.clone(), warmup, rss_peak.clone(), rss_warm.clone()));

    eprintln!("valor {pid} idle at {rss_idle} KiB; {} chats × {} messages …", args.chats, args.messages);
    let load_start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (index, &(chat, user)) in chats.iter().enumerate() {
        let fake = fake.clone();
        let replied = replied.clone();
        let delay = if args.ramp_ms == 0 {
            Duration::ZERO
        } else {
            Duration::from_millis(args.ramp_ms * index as u64 / args.chats as u64)
        };
        let (messages, think, timeout) =
            (args.messages, Duration::from_millis(args.think_ms), Duration::from_secs(args.reply_timeout_secs));
        tasks.spawn(async move {
            tokio::time::sleep(delay).await;
            for n in 0..messages {
                let tag = format!("q{chat}x{n}");
                let reply = fake.user_says(chat, user, &format!("load question {n}, tag {tag}"), &tag);
                if tokio::time::timeout(timeout, reply).await.is_ok_and(|answered| answered.is_ok()) {
                    replied.fetch_add(1, Ordering::Relaxed);
                }
                tokio::time::sleep(think).await;
            }
        });
    }
    let mut progress = tokio::time::interval(Duration::from_secs(10));
    progress.tick().await;
    loop {
        tokio::select! {
            joined = tasks.join_next() => if joined.is_none() { break },
            _ = progress.tick() => {
                let memory = Memory::read(pid).unwrap_or_default();
                eprintln!(
                    "  {:>5.0} s: {} of {total} replies; RSS {} KiB (anon {}, file {})",
                    load_start.elapsed().as_secs_f64(),
                    replied.load(Ordering::Relaxed),
                    memory.rss,
                    memory.anon,
                    memory.file
                );
            }
        }
    }
    let load_time = load_start.elapsed();
    // Late duplicates would show up here.
    tokio::time::sleep(Duration::from_secs(5)).await;
    done.cancel();
    sampler.await?;
    let after = Memory::read(pid)?;
    // valor hands free heap memory back once turns stop (its sampler runs every 10 s).
    tokio::time::sleep(Duration::from_secs(10)).await;
    let settled = Memory::read(pid)?;
    let warm = rss_warm.lock().map_or(None, |warm| *warm).unwrap_or_default();

    let report = Report::gather(&fake, &model, &chats, args.messages);
    let _ = tokio::process::Command::new("kill").arg("-TERM").arg(pid.to_string()).status().await;
    let _ = tokio::time::timeout(Duration::from_secs(15), child.wait()).await;
    let log_text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let (errors, warnings) = (log_text.matches(" ERROR ").count(), log_text.matches(" WARN ").count());

    println!("== valor load run ==");
    println!(
        "setup: {} chats ({} groups) × {} messages = {total} turns; model {} ms to first token + {} × {} ms; think {} ms; ramp {} ms; Bot API round trip {} ms",
        args.chats,
        args.groups,
        args.messages,
        args.model_latency_ms,
        args.tokens,
        args.token_gap_ms,
        args.think_ms,
        args.ramp_ms,
        args.bot_api_rtt_ms
    );
    println!("machine: {}", machine());
    report.print(load_time);
    println!("RSS of the valor process (/proc/<pid>/status: VmRSS = RssAnon + RssFile + RssShmem), KiB:");
    println!("  {:<26} {:>8} {:>8} {:>8} {:>8}", "", "VmRSS", "RssAnon", "RssFile", "RssShmem");
    println!("  {:<26} {:>8}", "peak under load", rss_peak.load(Ordering::Relaxed));
    for (label, memory) in [
        ("idle before load".to_owned(), idle),
        (format!("after {warmup} replies"), warm),
        ("after the run (+5 s)".to_owned(), after),
        ("settled (+15 s)".to_owned(), settled),
    ] {
        println!("  {label:<26} {:>8} {:>8} {:>8} {:>8}", memory.rss, memory.anon, memory.file, memory.shmem);
    }
    for (label, end) in [("after", after), ("settled", settled)] {
        println!(
            "  growth: {label} − idle {:+} KiB, {label} − warm-up {:+} KiB (anon {:+}, file {:+}, shmem {:+})",
            end.rss as i64 - idle.rss as i64,
            end.rss as i64 - warm.rss as i64,
            end.anon as i64 - warm.anon as i64,
            end.file as i64 - warm.file as i64,
            end.shmem as i64 - warm.shmem as i64,
        );
    }
    let calls: Vec<String> = fake.calls().iter().map(|(method, count)| format!("{method} {count}")).collect();
    println!("Bot API calls: {}", calls.join(", "));
    println!("valor log: {errors} ERROR and {warnings} WARN lines");
    if errors > 0 {
        for line in log_text.lines().filter(|line| line.contains(" ERROR ")).take(5) {
            println!("  {line}");
        }
    }
    Ok(())
}

/// `target/release/valor` when this runs as `target/release/examples/load`.
fn default_bin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let release = exe.parent().and_then(std::path::Path::parent).context("no parent directory of the example")?;
    Ok(release.join("valor"))
}

fn valor_config(args: &Args, dir: &std::path::Path, chats: &[(i64, i64)]) -> String {
    let users: Vec<String> = chats.iter().filter(|(chat, _)| *chat > 0).map(|(_, user)| user.to_string()).collect();
    let groups: Vec<String> = chats.iter().filter(|(chat, _)| *chat < 0).map(|(chat, _)| chat.to_string()).collect();
    format!(
        "data_dir = {data:?}\n\
         [llm]\nprovider = \"anthropic\"\n\
         [intent]\nuse_model = false\n\
         [context]\nsummarize_with_model = false\n\
         [telegram]\npoll_timeout_secs = 30\nallowed_users = [{users}]\ndev_groups = [{groups}]\n\
         rate_limit_per_minute = 6000\nrate_limit_burst = 1000\n\
         [resources]\nmax_active_turns = {turns}\n\
         [daydream]\nenabled = false\n",
        data = dir.join("data").display().to_string(),
        users = users.join(", "),
        groups = groups.join(", "),
        turns = args.max_active_turns,
    )
}

/// Resident memory of a process in KiB, from `/proc/<pid>/status`.
#[derive(Debug, Clone, Copy, Default)]
struct Memory {
    rss: u64,
    anon: u64,
    file: u64,
    shmem: u64,
}

impl Memory {
    fn read(pid: u32) -> anyhow::Result<Memory> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|value| value.split_whitespace().next())
                .and_then(|kib| kib.parse().ok())
                .with_context(|| format!("no {name} in /proc/{pid}/status"))
        };
        Ok(Memory {
            rss: field("VmRSS:")?,
            anon: field("RssAnon:")?,
            file: field("RssFile:")?,
            shmem: field("RssShmem:")?,
        })
    }
}

async fn sample_rss(
    pid: u32,
    done: tokio_util::sync::CancellationToken,
    replied: Arc<AtomicUsize>,
    warmup: usize,
    peak: Arc<AtomicU64>,
    warm: Arc<std::sync::Mutex<Option<Memory>>>,
) {
    let mut every = tokio::time::interval(Duration::from_millis(100));
    while !done.is_cancelled() {
        every.tick().await;
        let Ok(memory) = Memory::read(pid) else { return };
        peak.fetch_max(memory.rss, Ordering::Relaxed);
        if replied.load(Ordering::Relaxed) >= warmup
            && let Ok(mut warm) = warm.lock()
        {
            warm.get_or_insert(memory);
        }
    }
}

fn tail(path: &std::path::Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| info.lines().next().map(|line| line.split_whitespace().nth(1).unwrap_or("?").to_owned()))
        .and_then(|kib| kib.parse::<u64>().ok())
        .map_or_else(|| "?".to_owned(), |kib| format!("{} GiB", kib / 1024 / 1024));
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!("{cpus} CPUs, {memory} RAM, load average {}", load.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
}

/// Everything measured, joined per question tag.
struct Report {
    asked: usize,
    answered: usize,
    lost: usize,
    duplicated: usize,
    model_repeats: usize,
    intake: Vec<Duration>,
    reply_raw: Vec<Duration>,
    reply_pacing: Vec<Duration>,
    reply_own: Vec<Duration>,
    end_to_end: Vec<Duration>,
    first_asked: Option<Instant>,
    last_reply: Option<Instant>,
    violations: telegram::Violations,
    untagged: u64,
    rejected_html: u64,
}

impl Report {
    fn gather(fake: &FakeTelegram, model: &FakeModel, chats: &[(i64, i64)], messages: usize) -> Report {
        let replies = fake.replies();
        let turns = model.turns();
        let mut report = Report {
            asked: 0,
            answered: 0,
            lost: 0,
            duplicated: 0,
            model_repeats: 0,
            intake: Vec::new(),
            reply_raw: Vec::new(),
            reply_pacing: Vec::new(),
            reply_own: Vec::new(),
            end_to_end: Vec::new(),
            first_asked: None,
            last_reply: None,
            violations: fake.violations(),
            untagged: model.untagged(),
            rejected_html: fake.rejected_html(),
        };
        for &(chat, _) in chats {
            for n in 0..messages {
                let tag = format!("q{chat}x{n}");
                let Some(handed) = fake.handed_out(&tag) else { continue };
                report.asked += 1;
                report.first_asked = Some(report.first_asked.map_or(handed, |first| first.min(handed)));
                let sent = replies.get(&tag).map(Vec::as_slice).unwrap_or_default();
                match sent.len() {
                    0 => report.lost += 1,
                    1 => {}
                    _ => report.duplicated += 1,
                }
                let turn = turns.get(&tag);
                if let Some(turn) = turn.filter(|turn| turn.requested.len() > 1) {
                    report.model_repeats += turn.requested.len() - 1;
                }
                if let Some(&requested) = turn.and_then(|turn| turn.requested.first()) {
                    report.intake.push(requested.saturating_duration_since(handed));
                }
                let Some(reply) = sent.first() else { continue };
                report.answered += 1;
                report.last_reply = Some(report.last_reply.map_or(reply.received, |last| last.max(reply.received)));
                report.end_to_end.push(reply.received.saturating_duration_since(handed));
                if let Some(last_token) = turn.and_then(|turn| turn.last_token) {
                    report.reply_raw.push(reply.received.saturating_duration_since(last_token));
                    report.reply_pacing.push(reply.allowed_from.saturating_duration_since(last_token));
                    report.reply_own.push(reply.received.saturating_duration_since(reply.allowed_from.max(last_token)));
                }
            }
        }
        report
    }

    fn print(&self, load_time: Duration) {
        println!(
            "messages: {} asked, {} answered, {} lost (no reply), {} duplicated (more than one reply)",
            self.asked, self.answered, self.lost, self.duplicated
        );
        println!(
            "Telegram limit violations: {} per chat (>1/s), {} per group (>20/min), {} overall (>30/s); {} messages Telegram would reject as bad HTML",
            self.violations.per_chat, self.violations.per_group, self.violations.global, self.rejected_html
        );
        println!(
            "model requests: {} repeated for one message, {} without a question tag",
            self.model_repeats, self.untagged
        );
        let span = match (self.first_asked, self.last_reply) {
            (Some(first), Some(last)) => last.saturating_duration_since(first),
            _ => load_time,
        };
        println!(
            "throughput: {} replies in {:.1} s = {:.1} turns/s (Telegram's 30 messages/s overall caps it)",
            self.answered,
            span.as_secs_f64(),
            self.answered as f64 / span.as_secs_f64().max(1e-9)
        );
        println!("latency added by valor (model time excluded)       p50        p95        p99        max");
        print_row("(a) getUpdates → model request", &self.intake);
        print_row("(b) last token → sendMessage, all", &self.reply_raw);
        print_row("    of which Telegram-limit pacing", &self.reply_pacing);
        print_row("    of which valor's own delay", &self.reply_own);
        print_row("end to end (with model time, pacing)", &self.end_to_end);
    }
}

fn print_row(label: &str, values: &[Duration]) {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let at = |q: f64| {
        if sorted.is_empty() {
            return "-".to_owned();
        }
        let index = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
        format_duration(sorted[index])
    };
    let max = sorted.last().map_or_else(|| "-".to_owned(), |max| format_duration(*max));
    println!("  {label:<38} {:>10} {:>10} {:>10} {:>10}   (n = {})", at(0.50), at(0.95), at(0.99), max, sorted.len());
}

fn format_duration(duration: Duration) -> String {
    let micros = duration.as_micros();
    if micros < 10_000 {
        format!("{:.2} ms", micros as f64 / 1000.0)
    } else if micros < 10_000_000 {
        format!("{:.0} ms", micros as f64 / 1000.0)
    } else {
        format!("{:.1} s", duration.as_secs_f64())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::parse_env_pair;

    #[test]
    fn valor_env_takes_name_equals_value_and_names_what_is_wrong() {
        assert_eq!(parse_env_pair("MALLOC_ARENA_MAX=2"), Ok(("MALLOC_ARENA_MAX".into(), "2".into())));
        assert_eq!(parse_env_pair("A=b=c"), Ok(("A".into(), "b=c".into())), "only the first = splits");
        assert_eq!(parse_env_pair("EMPTY="), Ok(("EMPTY".into(), String::new())));
        for bad in ["NOVALUE", "=2", ""] {
            let error = parse_env_pair(bad).unwrap_err();
            assert!(error.contains("expected NAME=VALUE"), "{bad:?}: {error}");
        }
    }
}
