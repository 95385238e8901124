//! How `serve` keeps its resident memory small on a 512 MiB Zero 2 W:
//! small pages for the heap, and memory that ended sessions freed handed
//! back to the kernel instead of kept by the allocator.

/// Transparent huge pages turn a sparse heap into 2 MiB of resident memory
/// at a time (about 12 MiB here for no gain). Failing to turn them off
/// changes nothing else.
pub fn keep_heap_in_small_pages() {
    // SAFETY: PR_SET_THP_DISABLE takes plain integers and touches no memory.
    let rc = unsafe { nix::libc::prctl(nix::libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    if rc != 0 {
        eprintln!(
            "serve: huge pages stay on: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Returns the free pages of every glibc malloc arena to the kernel. A
/// session's webrtcbin allocates from several streaming threads, so what it
/// frees is spread over arenas that glibc would otherwise keep (about 2 MB
/// after a few viewers came and went). Takes well under a millisecond.
#[cfg(target_env = "gnu")]
pub fn give_back_freed() {
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        nix::libc::malloc_trim(0);
    }
}

/// Other C libraries have no malloc_trim; their allocators keep what they
/// keep.
#[cfg(not(target_env = "gnu"))]
pub fn give_back_freed() {}
