//! What the example servers say when they cannot listen (shared with `#[path]`: not an example itself).

/// Says which address could not be listened on and how to choose another, and exits (status 1).
pub(crate) fn cannot_listen(listen: &str, error: &std::io::Error) -> ! {
    if error.kind() == std::io::ErrorKind::AddrInUse {
        eprintln!(
            "{listen} is already in use: choose another address with --listen HOST:PORT (port 0 picks a free one)"
        );
    } else {
        eprintln!("cannot listen on {listen}: {error}");
    }
    std::process::exit(1)
}
