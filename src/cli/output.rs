//! Rendering results: one JSON object per line on stdout with `--json`, readable text
//! otherwise; warnings on stderr; a progress spinner on a terminal.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

/// Output options shared by every subcommand.
#[derive(Debug, Args, Clone, Copy)]
pub struct OutputArgs {
    /// Print one JSON object per result on stdout.
    #[arg(long)]
    pub json: bool,
}

/// Prints `value` as one JSON line.
pub fn json_line(value: &impl Serialize) {
    let line = serde_json::to_string(value).expect("results serialize");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
}

/// Prints a warning on stderr.
pub fn warn(message: impl std::fmt::Display) {
    eprintln!("layerize: warning: {message}");
}

/// A byte-counting spinner on stderr when it is a terminal, hidden otherwise.
pub fn bytes_progress(message: &'static str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner().with_message(message);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {bytes} ({bytes_per_sec})")
            .expect("valid template"),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// A writer that advances `bar` by the bytes it passes on.
pub struct Progress<W> {
    pub inner: W,
    pub bar: ProgressBar,
}

impl<W: Write> Write for Progress<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bar.inc(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
