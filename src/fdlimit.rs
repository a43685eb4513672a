//! The process's open-file limit: raised to the hard limit while dts runs (it holds a
//! socket or two per connection), put back for the local tasks it starts, which should
//! see the limit they would have had without dts (a soft limit of a million makes
//! programs that close every possible descriptor, or use `select(2)`, slow or wrong).

use std::sync::atomic::{AtomicU64, Ordering};

/// The soft limit dts started with, once [`raise`] has raised it.
static STARTED_WITH: AtomicU64 = AtomicU64::new(u64::MAX);

/// Raises the soft `RLIMIT_NOFILE` to the hard one; returns the soft limit now in force.
pub fn raise() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write one rlimit struct on the stack.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                let _ = STARTED_WITH.compare_exchange(
                    u64::MAX,
                    limit.rlim_cur,
                    Ordering::SeqCst,
                    Ordering::SeqCst,
                );
                limit.rlim_cur = limit.rlim_max;
            }
        }
    }
    limit.rlim_cur
}

/// Puts the soft limit back to what dts started with, if [`raise`] changed it. Only
/// async-signal-safe calls: meant for a child between fork and exec.
pub fn restore() -> std::io::Result<()> {
    let soft = STARTED_WITH.load(Ordering::SeqCst);
    if soft == u64::MAX {
        return Ok(());
    }
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: as in `raise`; both calls are async-signal-safe.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        limit.rlim_cur = soft.min(limit.rlim_max);
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Descriptors this process has open now (1024 if /proc cannot tell).
pub fn in_use() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(1024, |dir| dir.count() as u64)
}
