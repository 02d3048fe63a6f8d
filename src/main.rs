//! The `marketing-analytics` binary: the allocator and the process's start-up settings; the
//! command line itself is `marketing_analytics::cli`.

// The engine allocates and frees many small buffers per row group and window partition:
// mimalloc is much faster at it than glibc's allocator (docs/performance.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns transparent huge pages off for this process, as `MIMALLOC_ALLOW_THP=0` would (which
/// mimalloc reads before `main`, so it cannot be set from here).
///
/// mimalloc asks for huge pages and gives memory back in 64 KiB pieces, so the kernel splits
/// huge pages and faults fresh ones in, zeroing 2 MiB each time (docs/performance.md).
/// Setting `MIMALLOC_ALLOW_THP` keeps the user's choice.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: PR_SET_THP_DISABLE takes integers and touches no memory of ours. Failing
        // (an old kernel) only leaves the default, so the result is ignored.
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1 as libc::c_ulong, 0, 0, 0);
        }
    }
}

fn main() -> std::process::ExitCode {
    disable_transparent_huge_pages();
    marketing_analytics::cli::main()
}
