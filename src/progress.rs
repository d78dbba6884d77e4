//! Progress on a terminal (stderr): groups read (and the puts written meanwhile), then the
//! remaining changes applied, with counts and rate.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::Progress;

/// An indicatif bar on stderr; draws nothing when stderr is not a terminal.
pub struct TerminalProgress {
    bar: Mutex<Option<ProgressBar>>,
    /// Puts finished while groups were still being read, shown next to the reads.
    written: AtomicUsize,
}

impl TerminalProgress {
    /// A display when stderr is a terminal and `enabled`; otherwise `None`.
    pub fn new(enabled: bool) -> Option<TerminalProgress> {
        (enabled && std::io::stderr().is_terminal()).then(|| TerminalProgress {
            bar: Mutex::new(None),
            written: AtomicUsize::new(0),
        })
    }

    fn start(&self, len: usize, what: &str) {
        let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{spinner} {msg:<28} [{bar:30}] {pos}/{len} ({per_sec}, {elapsed})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(what.to_owned());
        bar.enable_steady_tick(Duration::from_millis(200));
        let mut slot = self.bar.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = slot.replace(bar) {
            old.finish_and_clear();
        }
    }

    fn tick(&self) {
        if let Some(bar) = &*self.bar.lock().unwrap_or_else(|e| e.into_inner()) {
            bar.inc(1);
        }
    }

    /// Removes the bar before the summary is printed.
    pub fn finish(&self) {
        if let Some(bar) = self.bar.lock().unwrap_or_else(|e| e.into_inner()).take() {
            bar.finish_and_clear();
        }
    }
}

impl Progress for TerminalProgress {
    fn listed(&self, in_scope: usize) {
        self.start(in_scope, "reading groups");
    }

    fn group_read(&self) {
        self.tick();
    }

    fn planned(&self, changes: usize) {
        if changes > 0 {
            self.start(changes, "applying changes");
        } else {
            self.finish();
        }
    }

    fn applied(&self) {
        self.tick();
    }

    fn written_early(&self) {
        let written = self.written.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(bar) = &*self.bar.lock().unwrap_or_else(|e| e.into_inner()) {
            bar.set_message(format!("reading groups, {written} written"));
        }
    }
}
