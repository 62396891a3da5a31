//! Building and running the application.
//!
//! [`Application::build`], in order: the server check (`@@max_connections`, the
//! account's `@@session.max_user_connections` against `MAX_CONNECTIONS × DB_INSTANCES +
//! DB_RESERVED_CONNECTIONS`; see [`crate::limits`]), on one connection of a probe pool
//! closed before the budget exists → the budget, built with the most the check accepts
//! (its limit: `POST /admin/budget` may grow it that far at run time) and set to
//! `MAX_CONNECTIONS` → both pools on it, installed as the process-wide ones (so
//! `db_sync::get_database_connection()`, which the legacy modules call, and
//! `db_async::global()` draw from this one budget) → migrations → quest templates and
//! reward tiers → bind both listeners. Any failure closes the pools and returns a
//! [`StartupError`] that says what to fix.
//!
//! [`Application::run_until_stopped`] serves until [`ShutdownHandle::trigger`] (SIGINT or
//! SIGTERM in `main`), then: both listeners stop accepting, in-flight requests get
//! `SHUTDOWN_TIMEOUT` to finish (then they are dropped), WebSockets are closed, both
//! pools are closed (connections still out get `SHUTDOWN_TIMEOUT` again to come back),
//! and the last log line reports the budget units still in use.
//!
//! sync-usage: infrastructure (builds, hands out and closes the blocking pool; goes when db-sync goes, not ported module by module).

use db_fleet::{Fleet, FleetSettings};
use db_view::{Explained, ServerView, ViewSettings};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use db_async::{AsyncPool, args};
use db_budget::{Budget, Config, ConfigError, DbError, HumanDuration, Installed};
use db_sync::SyncPool;
use retention::{DayBoundary, Retention, RetentionError};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::admin::{self, AdminState, Controls};
use crate::auth::TokenKey;
use crate::limits::{self, Headroom, LimitError, Plan, ServerLimits};
use crate::routes::api_router;
use crate::settings::Settings;
use crate::shutdown::ShutdownHandle;
use crate::state::AppState;

/// Why the server did not start. Every message names what to change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartupError {
    /// A setting is missing or wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The database server could not be reached or asked.
    #[error("cannot use the database at {url}: {source}")]
    Database {
        /// `DATABASE_URL` without its password.
        url: String,
        /// The pool's error (no SQL, no credentials).
        #[source]
        source: DbError,
    },
    /// The budget does not fit in what the server allows.
    #[error("refusing to start: {0}")]
    ServerLimit(#[source] LimitError),
    /// Migrations failed.
    #[error("database migrations failed: {0}")]
    Migrate(#[source] RetentionError),
    /// The quest templates or reward tiers could not be written.
    #[error("seeding quest templates and reward tiers failed: {0}")]
    Seed(#[source] RetentionError),
    /// A retention setting was refused.
    #[error("invalid retention setting: {0}")]
    Retention(#[source] RetentionError),
    /// Another application in this process holds the process-wide budget and pools
    /// (there is one of each per process, so that legacy code's global functions use
    /// the server's budget).
    #[error("cannot install the process-wide connection budget: {0}")]
    Global(#[source] DbError),
    /// The server-view reader could not start (`DB_SERVER_VIEW_INTERVAL`).
    #[error("cannot start the server-view reader (DB_SERVER_VIEW_INTERVAL): {0}")]
    View(#[source] db_view::ViewError),
    /// The instance could not join its fleet (`DB_FLEET_BUDGET`).
    #[error("cannot join the fleet budget: {0}")]
    Fleet(#[source] db_fleet::FleetError),
    /// A listener could not be bound.
    #[error("cannot listen on {variable}={addr}: {source}")]
    Bind {
        /// `LISTEN_ADDR` or `ADMIN_ADDR`.
        variable: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// A built application: pools open, schema migrated, listeners bound, not serving yet.
#[derive(Debug)]
pub struct Application {
    api_listener: TcpListener,
    admin_listener: TcpListener,
    api_addr: SocketAddr,
    admin_addr: SocketAddr,
    state: AppState,
    sync_pool: SyncPool,
    budget: Budget,
    shutdown_timeout: Duration,
    /// Keeps the budget and both pools installed as the process-wide ones until the
    /// application has shut down.
    globals: Globals,
    /// The database server's own view (`DB_SERVER_VIEW_INTERVAL`), if on: dropped after
    /// the pools are closed, before the fleet.
    view: Option<ServerView>,
    /// This instance's membership of the fleet budget (`DB_FLEET_BUDGET`), if any:
    /// dropped last, after the pools are closed.
    fleet: Option<Fleet>,
    /// The admin listener's control routes (`ADMIN_TOKEN`).
    controls: Controls,
}

/// The process-wide installation of the application's budget and pools.
#[derive(Debug)]
struct Globals {
    _budget: Installed<(Config, Budget)>,
    _sync: Installed<SyncPool>,
    _async: Installed<AsyncPool>,
}

impl Globals {
    fn install(
        config: &Config,
        budget: &Budget,
        async_pool: &AsyncPool,
        sync_pool: &SyncPool,
    ) -> Result<Globals, StartupError> {
        // Each guard uninstalls on drop, so a failure part-way leaves nothing behind.
        let budget = db_budget::install_global(config.clone(), budget.clone());
        let budget = budget.map_err(StartupError::Global)?;
        // Legacy code reaches the database through the shim: the `legacy` bulkhead.
        let legacy = sync_pool.for_module("legacy");
        let sync = db_sync::install_global(legacy).map_err(StartupError::Global)?;
        let asyn = db_async::install_global(async_pool.clone()).map_err(StartupError::Global)?;
        Ok(Globals {
            _budget: budget,
            _sync: sync,
            _async: asyn,
        })
    }
}

impl Application {
    /// Builds the application (see the module docs for the order).
    ///
    /// # Errors
    ///
    /// [`StartupError`]; the pools are closed before it is returned.
    pub async fn build(settings: Settings) -> Result<Application, StartupError> {
        let db = &settings.db;
        let url = db
            .database_url
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        let headroom = check_server(&settings, &url).await?;
        tracing::info!(
            spare = headroom.spare(),
            "database server check passed: {headroom}"
        );
        let fleet_settings = (settings.fleet_budget > 0).then(|| {
            let name = db
                .database_url
                .as_ref()
                .map_or("fleet", |u| u.database())
                .to_owned();
            FleetSettings::new(
                settings.fleet_budget,
                settings.instances,
                db.max_connections,
                &name,
            )
        });
        let budget = match &fleet_settings {
            Some(f) => Budget::from_config_with_capacity(db, f.capacity()),
            // Bulkheads divide MAX_CONNECTIONS: such a budget is not resized.
            None if !db.bulkheads.is_empty() => Budget::from_config(db),
            None => resizable_budget(db, capacity_limit(&headroom)),
        };
        // Before the pools: joining withholds every unit above this instance's floor.
        let fleet = match (&fleet_settings, &db.database_url) {
            (Some(f), Some(u)) => {
                Some(Fleet::join(&budget, u, f.clone()).map_err(StartupError::Fleet)?)
            }
            _ => None,
        };
        // After joining (which needs the budget whole): its connection is one of the
        // budget's.
        let view = match &db.database_url {
            Some(u) if !settings.server_view_interval.is_zero() => {
                let explained = match &fleet_settings {
                    Some(_) => Explained::Fleet {
                        budget: settings.fleet_budget,
                    },
                    None => Explained::Static {
                        others: (settings.instances - 1).saturating_mul(db.max_connections),
                    },
                };
                let mut view_settings = ViewSettings::new(settings.server_view_interval, explained);
                // A fleet's control connection is this process's too.
                view_settings.beside = u32::from(fleet.is_some());
                Some(ServerView::start(&budget, u, view_settings).map_err(StartupError::View)?)
            }
            _ => None,
        };
        let async_pool =
            AsyncPool::from_config(db, budget.clone()).map_err(|e| database(&url, e))?;
        let sync_pool = SyncPool::from_config(db, budget.clone()).map_err(|e| database(&url, e))?;
        tracing::info!(
            database = %url,
            max_connections = db.max_connections,
            pool_timeout = %HumanDuration(db.pool_timeout),
            "connection budget of {} shared by the async and blocking pools",
            db.max_connections
        );
        let prepared = match Globals::install(db, &budget, &async_pool, &sync_pool) {
            Ok(globals) => {
                prepare(&settings, &url, &async_pool, &sync_pool, &budget, globals).await
            }
            Err(e) => Err(e),
        };
        match prepared {
            Ok(app) => Ok(Application {
                fleet,
                view,
                controls: Controls::new(settings.admin_token.clone(), settings.fleet_budget > 0),
                ..app
            }),
            Err(e) => {
                // The order of shutdown: the pools close first, so that the fleet's leases
                // are given back only once no pool connection holds their units.
                close_pools(&async_pool, &sync_pool).await;
                drop(view);
                drop(fleet);
                Err(e)
            }
        }
    }

    /// Where the API listens.
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// The API's port (the real one when `LISTEN_ADDR` had port 0).
    pub fn api_port(&self) -> u16 {
        self.api_addr.port()
    }

    /// Where the admin listener listens.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin_addr
    }

    /// The admin listener's port.
    pub fn admin_port(&self) -> u16 {
        self.admin_addr.port()
    }

    /// Triggers the same graceful shutdown as SIGTERM.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.state.shutdown.clone()
    }

    /// The connection budget (tests assert it is back to 0 after shutdown).
    pub fn budget(&self) -> Budget {
        self.budget.clone()
    }

    /// The async pool (tests hold its connections to exhaust the budget).
    pub fn async_pool(&self) -> AsyncPool {
        self.state.async_pool.clone()
    }

    /// The blocking pool.
    pub fn sync_pool(&self) -> SyncPool {
        self.sync_pool.clone()
    }

    /// Serves both listeners until the shutdown is triggered, then shuts down (see the
    /// module docs). The last log line is `shutdown complete: budget units in use: N`.
    ///
    /// # Errors
    ///
    /// An I/O error of a listener that failed while serving (the pools are closed all
    /// the same).
    pub async fn run_until_stopped(self) -> Result<(), std::io::Error> {
        let Application {
            api_listener,
            admin_listener,
            api_addr,
            admin_addr,
            state,
            sync_pool,
            budget,
            shutdown_timeout,
            globals,
            view,
            fleet,
            controls,
        } = self;
        let shutdown = state.shutdown.clone();
        let admin_state = AdminState {
            budget: budget.clone(),
            async_pool: state.async_pool.clone(),
            sync_pool: sync_pool.clone(),
            view: view.as_ref().map(ServerView::handle),
            fleet: fleet.as_ref().map(Fleet::handle),
            controls,
        };
        let async_pool = state.async_pool.clone();

        let api = serve(api_listener, api_router(state), &shutdown);
        let admin = serve(admin_listener, admin::router(admin_state), &shutdown);
        let aborts = [api.abort_handle(), admin.abort_handle()];
        tracing::info!("API listening on http://{api_addr}/api (WebSocket: ws://{api_addr}/ws)");
        tracing::info!("dashboard on http://{admin_addr}/dashboard (metrics: /metrics)");
        let servers = async {
            let (api, admin) = tokio::join!(api, admin);
            served(api).and(served(admin))
        };
        tokio::pin!(servers);

        // Serve until told to stop (or until both servers end on their own).
        let mut outcome = None;
        tokio::select! {
            () = shutdown.triggered() => {}
            result = &mut servers => outcome = Some(result),
        }
        shutdown.trigger();
        tracing::info!(
            "shutting down: listeners closed, waiting up to {} for in-flight requests",
            HumanDuration(shutdown_timeout)
        );

        // In-flight requests get the bound; whatever is left is dropped.
        let started = Instant::now();
        let outcome = match outcome {
            Some(result) => result,
            None => match tokio::time::timeout(shutdown_timeout, &mut servers).await {
                Ok(result) => {
                    tracing::info!(
                        "in-flight requests finished in {}",
                        HumanDuration(started.elapsed())
                    );
                    result
                }
                Err(_) => {
                    tracing::warn!(
                        "in-flight requests did not finish within {}: dropping them",
                        HumanDuration(shutdown_timeout)
                    );
                    aborts.iter().for_each(tokio::task::AbortHandle::abort);
                    Ok(())
                }
            },
        };

        // Connections still out (a blocking call finishing on its thread, a rollback in
        // flight) are closed as they come back: give them the same bound.
        close_pools(&async_pool, &sync_pool).await;
        let deadline = Instant::now() + shutdown_timeout;
        while budget.in_use() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Only now: the legacy calls finishing above still found the installed pools.
        drop(globals);
        drop(view);
        // Last: its leases go once no connection uses them.
        drop(fleet);
        tracing::info!(
            "shutdown complete: budget units in use: {}",
            budget.in_use()
        );
        outcome
    }
}

fn database(url: &str, source: DbError) -> StartupError {
    match source {
        DbError::Config(e) => StartupError::Config(e),
        source => StartupError::Database {
            url: url.to_owned(),
            source,
        },
    }
}

/// Everything after the pools: migrate, seed, bind.
async fn prepare(
    settings: &Settings,
    url: &str,
    async_pool: &AsyncPool,
    sync_pool: &SyncPool,
    budget: &Budget,
    globals: Globals,
) -> Result<Application, StartupError> {
    retention::migrate(async_pool).await.map_err(|e| match e {
        RetentionError::Db(source) => database(url, source),
        e => StartupError::Migrate(e),
    })?;
    tracing::info!("database migrations applied");

    let boundary = DayBoundary::new(settings.day_reset_hour, settings.day_utc_offset_minutes)
        .map_err(StartupError::Retention)?;
    let retention = Retention::builder(async_pool.for_module("retention"))
        .day_boundary(boundary)
        .quests_per_day(settings.quests_per_day)
        .build()
        .map_err(StartupError::Retention)?;
    let seed = |e: RetentionError| match e {
        RetentionError::Db(source) => database(url, source),
        e => StartupError::Seed(e),
    };
    let templates = retention.initialize_quest_templates().await.map_err(seed)?;
    let tiers = retention.initialize_daily_rewards().await.map_err(seed)?;
    tracing::info!(
        ?templates,
        ?tiers,
        "quest templates and reward tiers are up to date"
    );

    let api_listener = bind("LISTEN_ADDR", settings.listen).await?;
    let admin_listener = bind("ADMIN_ADDR", settings.admin_listen).await?;
    let api_addr = local_addr("LISTEN_ADDR", &api_listener, settings.listen)?;
    let admin_addr = local_addr("ADMIN_ADDR", &admin_listener, settings.admin_listen)?;

    Ok(Application {
        api_listener,
        admin_listener,
        api_addr,
        admin_addr,
        state: AppState {
            tokens: Arc::new(TokenKey::new(&settings.secret)),
            async_pool: async_pool.clone(),
            retention,
            shutdown: ShutdownHandle::new(),
        },
        sync_pool: sync_pool.clone(),
        budget: budget.clone(),
        shutdown_timeout: settings.shutdown_timeout,
        globals,
        view: None,
        fleet: None,
        controls: Controls::default(),
    })
}

/// Reads the server's limits and checks the budget against them. The read takes one
/// connection of a probe pool on a budget of one unit, closed before this returns: the
/// application's budget is sized by the answer.
async fn check_server(settings: &Settings, url: &str) -> Result<Headroom, StartupError> {
    let db = &settings.db;
    let probe = AsyncPool::from_config(db, Budget::new(1, db.leak_threshold))
        .map_err(|e| database(url, e))?;
    let read = async {
        let mut conn = probe.acquire().await?;
        conn.fetch_one::<(i64, i64)>(
            // The session value: the account's own limit if it has one.
            "SELECT CAST(@@max_connections AS SIGNED), CAST(@@session.max_user_connections AS SIGNED)",
            args![],
        )
        .await
    };
    let read = read.await;
    probe.close().await;
    let (max_connections, max_user_connections) = read.map_err(|e| database(url, e))?;
    let server = ServerLimits {
        max_connections,
        max_user_connections,
    };
    let plan = Plan {
        max_connections: settings.db.max_connections,
        instances: settings.instances,
        reserved: settings.reserved_connections,
        fleet_budget: settings.fleet_budget,
    };
    limits::check(server, plan).map_err(StartupError::ServerLimit)
}

/// The most units one instance's budget may hold for the startup check to still pass:
/// `MAX_CONNECTIONS` and its headroom, split between the instances.
fn capacity_limit(headroom: &Headroom) -> u32 {
    let (server, plan) = (headroom.server, headroom.plan);
    let mut room = server.max_connections - i64::from(plan.reserved);
    if server.max_user_connections > 0 {
        room = room.min(server.max_user_connections);
    }
    let per_instance = room / i64::from(plan.instances.max(1));
    u32::try_from(per_instance)
        .unwrap_or(u32::MAX)
        .max(plan.max_connections)
}

/// A budget that holds up to `limit` units (what `POST /admin/budget` may grow it to)
/// and starts at `MAX_CONNECTIONS`, the rest withheld.
fn resizable_budget(config: &Config, limit: u32) -> Budget {
    let budget = Budget::from_config_with_capacity(config, limit);
    match budget.set_capacity(config.max_connections) {
        Ok(_) => budget,
        Err(e) => {
            // Not reached: the limit is at least MAX_CONNECTIONS, and the budget has
            // neither bulkheads nor a fleet. Should it be, serve without growing.
            tracing::error!(error = %e, "the budget cannot be resized at run time");
            Budget::from_config(config)
        }
    }
}

async fn bind(variable: &'static str, addr: SocketAddr) -> Result<TcpListener, StartupError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartupError::Bind {
            variable,
            addr,
            source,
        })
}

fn local_addr(
    variable: &'static str,
    listener: &TcpListener,
    addr: SocketAddr,
) -> Result<SocketAddr, StartupError> {
    listener.local_addr().map_err(|source| StartupError::Bind {
        variable,
        addr,
        source,
    })
}

/// Serves `router` on `listener` in a task; it stops accepting when `shutdown` fires
/// and ends when its in-flight requests are done.
fn serve(
    listener: TcpListener,
    router: axum::Router,
    shutdown: &ShutdownHandle,
) -> JoinHandle<std::io::Result<()>> {
    let signal = shutdown.triggered();
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(signal)
            .await
    })
}

fn served(result: Result<std::io::Result<()>, tokio::task::JoinError>) -> std::io::Result<()> {
    match result {
        Ok(r) => r,
        Err(e) if e.is_cancelled() => Ok(()),
        Err(e) => Err(std::io::Error::other(e)),
    }
}

/// Closes both pools: idle connections now, checked-out ones when they come back.
async fn close_pools(async_pool: &AsyncPool, sync_pool: &SyncPool) {
    async_pool.close().await;
    let sync_pool = sync_pool.clone();
    // Closing drops idle mysql connections, which is socket I/O: off the runtime threads.
    if let Err(e) = tokio::task::spawn_blocking(move || sync_pool.close()).await {
        tracing::warn!(error = %e, "closing the blocking pool failed");
    }
}
