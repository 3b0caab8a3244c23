//! Log output: text for people, or one JSON object per line. RUST_LOG
//! overrides the level; the daemon logs at info (what it attached, sidecars
//! forgotten), one-shot commands at warn.
use std::io::Write;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

pub fn init(format: LogFormat, command: &super::Command) {
    let level = match command {
        super::Command::Run(_) => "info",
        _ => "warn",
    };
    let mut b = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level));
    if format == LogFormat::Json {
        b.format(|buf, record| {
            let line = serde_json::json!({
                "ts": unix_seconds(),
                "level": record.level().as_str().to_lowercase(),
                "target": record.target(),
                "msg": record.args().to_string(),
            });
            writeln!(buf, "{line}")
        });
    }
    b.init();
}

fn unix_seconds() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
