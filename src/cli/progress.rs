//! Progress of long statements (index builds, `OPTIMIZE`) on the terminal: one bar per stage of
//! the work, drawn on standard error and cleared when the stage ends. The shell installs it only
//! when standard error is a terminal, so scripts and pipes see nothing of it.

use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::engine::WorkProgress;

/// Draws the current stage of a long statement.
#[derive(Debug, Default)]
pub struct TerminalProgress {
    current: Mutex<Option<ProgressBar>>,
}

impl TerminalProgress {
    fn current(&self) -> std::sync::MutexGuard<'_, Option<ProgressBar>> {
        self.current
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// `train_ivf` reads as "train ivf".
fn stage_label(stage: &str, unit: &str) -> String {
    let stage = stage.replace('_', " ");
    if unit.is_empty() {
        stage
    } else {
        format!("{stage} ({unit})")
    }
}

impl WorkProgress for TerminalProgress {
    fn stage_started(&self, stage: &str, total: Option<u64>, unit: &str) {
        let bar = match total {
            Some(total) => {
                let bar = ProgressBar::new(total);
                if let Ok(style) =
                    ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} {elapsed}")
                {
                    bar.set_style(style.progress_chars("=> "));
                }
                bar
            }
            None => ProgressBar::new_spinner(),
        };
        bar.set_message(stage_label(stage, unit));
        bar.enable_steady_tick(Duration::from_millis(120));
        if let Some(previous) = self.current().replace(bar) {
            previous.finish_and_clear();
        }
    }

    fn stage_advanced(&self, _stage: &str, completed: u64) {
        if let Some(bar) = self.current().as_ref() {
            bar.set_position(completed);
        }
    }

    fn stage_finished(&self, _stage: &str) {
        if let Some(bar) = self.current().take() {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stage_has_one_bar_from_start_to_finish() {
        let progress = TerminalProgress::default();
        progress.stage_started("train_ivf", Some(10), "partitions");
        progress.stage_advanced("train_ivf", 4);
        assert_eq!(
            progress.current().as_ref().map(ProgressBar::position),
            Some(4)
        );
        assert_eq!(
            progress.current().as_ref().map(|bar| bar.message()),
            Some("train ivf (partitions)".to_string())
        );
        // A stage that starts before the last one finished replaces its bar.
        progress.stage_started("shuffle", None, "");
        assert_eq!(
            progress.current().as_ref().map(|bar| bar.message()),
            Some("shuffle".to_string())
        );
        progress.stage_finished("shuffle");
        assert!(progress.current().is_none());
        // Progress outside a stage is ignored.
        progress.stage_advanced("shuffle", 3);
        assert!(progress.current().is_none());
    }
}
