//! A bridge from synchronous DataFusion callbacks to async storage calls.
//!
//! A few DataFusion hooks are synchronous (`SchemaProvider::table_names`, `table_exist`) but
//! must ask the object store. They run the future on this dedicated runtime and wait for it on
//! the calling thread, which is safe from inside or outside any other tokio runtime (unlike
//! `Handle::block_on`).

use std::future::Future;
use std::sync::mpsc;

use crate::error::{Error, Result};

/// A small runtime owned by the engine for storage calls made from synchronous code.
#[derive(Debug)]
pub struct BlockingBridge {
    runtime: Option<tokio::runtime::Runtime>,
}

impl BlockingBridge {
    /// Starts the bridge's runtime (one worker thread: these calls are short and rare).
    pub fn new() -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("lancesql-sync-io")
            .enable_all()
            .build()
            .map_err(|source| Error::File {
                path: "<runtime>".into(),
                source,
            })?;
        Ok(BlockingBridge {
            runtime: Some(runtime),
        })
    }

    /// Runs `future` to completion and returns its output, blocking the current thread.
    pub fn run<F>(&self, future: F) -> Result<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| Error::invalid("the engine is shutting down"))?;
        let (sender, receiver) = mpsc::sync_channel(1);
        runtime.spawn(async move {
            // The receiver only disappears if the caller is gone; nothing to report then.
            let _ = sender.send(future.await);
        });
        receiver
            .recv()
            .map_err(|_| Error::invalid("a storage call was cancelled"))
    }
}

impl Drop for BlockingBridge {
    fn drop(&mut self) {
        // Dropping a runtime inside another runtime's context panics; shutting it down in the
        // background does not.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
