//! The tokio runtime statements run on.
//!
//! Contract: [`build`] makes a multi-threaded runtime whose threads (workers and the blocking
//! pool) have [`STATEMENT_STACK_BYTES`] of stack, enough to plan and run the deepest statement
//! [`crate::engine::parse`] admits. Every front end (the shell, and the servers to come) runs the engine
//! on such a runtime, and never on a thread it did not make (a `main` thread's 8 MiB is not
//! enough). The stack is reserved address space; memory is used only as deep as a statement goes.

/// Stack size of every thread that plans or runs statements.
pub const STATEMENT_STACK_BYTES: usize = 256 * 1024 * 1024;

/// Sizes Lance's compute pool: `threads`, or one thread per core. Lance's own default keeps two
/// cores back for I/O and so gives a machine of two cores one thread, on which every writer of
/// a bulk write would queue (`storage::parts` writes a query's partitions at once).
///
/// Must be called before the process starts any thread (the first thing `main` does after
/// parsing its arguments): it sets an environment variable, which Lance reads once.
pub fn size_lance_pool(threads: Option<u64>) {
    let threads = threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, |cores| cores.get() as u64)
    });
    // SAFETY: no other thread exists yet (see above), so nothing reads the environment while it
    // changes.
    unsafe { std::env::set_var("LANCE_CPU_THREADS", threads.to_string()) }
}

/// A multi-threaded runtime for the engine, one worker per core.
pub fn build() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("lancesql-worker")
        .thread_stack_size(STATEMENT_STACK_BYTES)
        .build()
}

/// Runs the future `start` makes to completion on a new thread with [`STATEMENT_STACK_BYTES`] of
/// stack, inside `runtime`: for the future a front end's `main` drives (`block_on` would poll it
/// on the calling thread, whose stack is too small).
pub fn run_on_statement_thread<F, T>(
    runtime: &tokio::runtime::Runtime,
    start: impl FnOnce() -> F + Send,
) -> std::io::Result<T>
where
    F: std::future::Future<Output = T>,
    T: Send,
{
    std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name("lancesql-main".into())
            .stack_size(STATEMENT_STACK_BYTES)
            .spawn_scoped(scope, || runtime.block_on(start()))?;
        thread
            .join()
            .map_err(|_| std::io::Error::other("the statement thread panicked"))
    })
}
