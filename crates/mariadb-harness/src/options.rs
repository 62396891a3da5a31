//! Options for [`Server::start`](crate::Server::start).

/// How to start a private server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerOptions {
    /// `--max-connections` (default 200). Note that a SUPER account gets one
    /// extra slot beyond this; the `app` account does not.
    pub max_connections: u32,
    /// Extra `mariadbd` arguments, appended after the harness's own (so they
    /// win where the server takes the last value), e.g. `--wait-timeout=2`.
    pub extra_args: Vec<String>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            max_connections: 200,
            extra_args: Vec::new(),
        }
    }
}
