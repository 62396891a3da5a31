//! Options for [`Server::start`](crate::Server::start).

/// How to start a private server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// `--max-connections` (default 200; at least 10, MariaDB's least, or
    /// [`Server::start`](crate::Server::start) refuses it). Note that a SUPER account
    /// gets one extra slot beyond this; the `app` account does not.
    pub max_connections: u32,
    /// Extra `mariadbd` arguments, appended after the harness's own (so they
    /// win where the server takes the last value), e.g. `--wait-timeout=2`.
    pub extra_args: Vec<String>,
    /// A program, with its arguments, to run `mariadbd` under (the `mariadbd` command
    /// line follows them), e.g. `valgrind --tool=callgrind` to count the server's
    /// instructions. Such a server needs more time to start: the harness waits 30 s.
    /// Defaults to none: `mariadbd` runs directly.
    pub wrapper: Vec<String>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_connections: 200,
            extra_args: Vec::new(),
            wrapper: Vec::new(),
        }
    }
}
