//! The shutdown signal: one trigger, many listeners, fired by SIGINT/SIGTERM in `main`
//! or by tests through [`ShutdownHandle::trigger`].

use tokio::sync::watch;

/// Triggers and observes the start of a graceful shutdown. Clones share one signal.
#[derive(Debug, Clone)]
pub struct ShutdownHandle {
    tx: watch::Sender<bool>,
}

impl Default for ShutdownHandle {
    fn default() -> Self {
        ShutdownHandle::new()
    }
}

impl ShutdownHandle {
    /// A signal that has not fired.
    pub fn new() -> ShutdownHandle {
        ShutdownHandle {
            tx: watch::Sender::new(false),
        }
    }

    /// Starts the shutdown (idempotent): listeners stop accepting, in-flight requests
    /// get the shutdown bound to finish, WebSockets are closed.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// `true` once [`ShutdownHandle::trigger`] was called.
    pub fn is_triggered(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves once the shutdown was triggered (at once if it already was).
    pub fn triggered(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.tx.subscribe();
        async move {
            // Never errs: `rx` keeps the channel open (the sender lives in `self`'s clones
            // or is gone, in which case `wait_for` returns an error and we stop waiting).
            let _ = rx.wait_for(|fired| *fired).await;
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
///
/// # Panics
///
/// If the signal handlers cannot be installed (outside a tokio runtime).
pub async fn os_signal() -> &'static str {
    let ctrl_c = async {
        tokio::signal::ctrl_c()
            .await
            .expect("install the SIGINT handler");
    };
    #[cfg(unix)]
    let terminate = async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("install the SIGTERM handler")
            .recv()
            .await;
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => "SIGINT",
        () = terminate => "SIGTERM",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_trigger_wakes_listeners_registered_before_and_after_it() {
        let handle = ShutdownHandle::new();
        let early = handle.triggered();
        assert!(!handle.is_triggered());
        handle.clone().trigger();
        early.await;
        handle.triggered().await;
        assert!(handle.is_triggered());
    }
}
