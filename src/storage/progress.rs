//! Progress of long work a statement does in the storage layer (index builds, index
//! optimisation), reported stage by stage to whoever asked: [`WorkProgress`] is lancesql's own
//! trait, so front ends (the shell's progress bar) never see Lance's.

use std::sync::Arc;

use async_trait::async_trait;
use lance_index::progress::IndexBuildProgress;

/// Receives the stages of long work as they happen. Stages run one after another; a stage's
/// units (`partitions`, `rows`, ...) are Lance's and may be unknown.
pub trait WorkProgress: std::fmt::Debug + Send + Sync {
    /// `stage` began, with `total` units of `unit` to do when known.
    fn stage_started(&self, stage: &str, total: Option<u64>, unit: &str);
    /// `completed` units of `stage` are done.
    fn stage_advanced(&self, stage: &str, completed: u64);
    /// `stage` is over.
    fn stage_finished(&self, stage: &str);
}

/// A [`WorkProgress`] as Lance's index-build callback.
#[derive(Debug)]
pub(super) struct LanceProgress(pub Arc<dyn WorkProgress>);

#[async_trait]
impl IndexBuildProgress for LanceProgress {
    async fn stage_start(
        &self,
        stage: &str,
        total: Option<u64>,
        unit: &str,
    ) -> lance_core::Result<()> {
        self.0.stage_started(stage, total, unit);
        Ok(())
    }

    async fn stage_progress(&self, stage: &str, completed: u64) -> lance_core::Result<()> {
        self.0.stage_advanced(stage, completed);
        Ok(())
    }

    async fn stage_complete(&self, stage: &str) -> lance_core::Result<()> {
        self.0.stage_finished(stage);
        Ok(())
    }
}
