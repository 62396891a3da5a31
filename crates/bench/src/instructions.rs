//! Section 9's second table: the point select's cost with the statement timeout on
//! and off in instructions, counted by callgrind, for the client and the server apart.
//!
//! Throughput on a shared two-core machine moves by more than the 2 % the goal allows
//! from one run to the next, and says nothing of *where* a cost lies. Instructions do
//! not depend on what else the machine runs: callgrind counts the same total for the
//! same program and input, so a difference of a fraction of a percent is visible.
//!
//! The server runs under `valgrind --tool=callgrind`; so does a client process (this
//! program, `bench instructions-client URL`) holding one pool of each kind with the
//! timeout on and one with it off, each already connected. For each measurement the
//! parent zeroes both counters (`callgrind_control -z`), has the client run
//! [`STATEMENTS`] point selects through one pool (the same row ids every time), then
//! dumps both (`callgrind_control -d`) and divides the totals by the statements.
//! Single statements in a row, one caller: the count is what a statement costs, not
//! what waiting on a lock costs (valgrind runs one thread at a time).
//!
//! sync-usage: infrastructure (benchmarks db-sync itself; goes when db-sync goes, not ported module by module).

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use db_async::AsyncPool;
use db_budget::{Budget, DatabaseUrl, PoolSettings};
use db_sync::SyncPool;
use mariadb_harness::{Server, ServerOptions};

use crate::timeout::{PoolKind, Setting};
use crate::{ROWS, SQL};

/// The function the client counts in (callgrind's pattern for [`phase`]).
const CLIENT_COUNTS: &str = "*instructions::phase*";

/// Point selects per measurement.
pub const STATEMENTS: u64 = 2_000;

/// Rounds: each measures both pools with the timeout on and off, taking turns to go
/// first.
pub const ROUNDS: usize = 3;

/// One measurement: instructions per statement.
#[derive(Debug, Clone, Copy)]
pub struct Count {
    pub round: usize,
    pub pool: PoolKind,
    pub setting: Setting,
    pub client: f64,
    pub server: f64,
}

/// What the table shows.
#[derive(Debug, Clone, Default)]
pub struct InstructionReport {
    pub counts: Vec<Count>,
    pub valgrind: String,
}

/// Runs the measurements (about a minute): a private MariaDB and a client process,
/// both under callgrind.
///
/// # Errors
///
/// Valgrind missing, or the server or the client not starting or answering.
pub fn run() -> Result<InstructionReport, String> {
    let valgrind = version()?;
    let dir = std::env::temp_dir().join(format!("bench-callgrind-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let result = measure(&dir, valgrind);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn version() -> Result<String, String> {
    crate::sysbench::ensure_program("valgrind", "valgrind")?;
    let out = Command::new("valgrind")
        .arg("--version")
        .output()
        .map_err(|e| format!("valgrind: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn callgrind(out: &Path, name: &str) -> Vec<String> {
    vec![
        "valgrind".into(),
        "--tool=callgrind".into(),
        format!("--callgrind-out-file={}/{name}.%p", out.display()),
    ]
}

/// The server counts only inside `do_command` (a client's command, in its connection's
/// thread: parsing, running, the statement timer, the reply), not its background
/// threads, whose work depends on time, not on statements.
fn callgrind_server(out: &Path) -> Vec<String> {
    let mut args = callgrind(out, "server");
    args.push("--collect-atstart=no".into());
    args.push("--toggle-collect=do_command*".into());
    args
}

fn measure(dir: &Path, valgrind: String) -> Result<InstructionReport, String> {
    let server = Server::start(ServerOptions {
        max_connections: 20,
        // Valgrind runs neither io_uring nor libaio, and cannot reserve the buffer
        // pool's default address space.
        extra_args: vec![
            "--innodb-use-native-aio=0".into(),
            "--innodb-buffer-pool-size-max=128M".into(),
        ],
        wrapper: callgrind_server(dir),
    })
    .map_err(|e| format!("cannot start a private MariaDB under callgrind: {e}"))?;
    let db = server.create_database("instr").map_err(|e| e.to_string())?;
    crate::sysbench::ensure_installed()?;
    crate::sysbench::prepare(&server, &db)?;
    let url = server.root_url(&db);
    let mut client = Client::spawn(dir, &url)?;
    let mut counts = Vec::new();
    for round in 0..ROUNDS {
        for pool in [PoolKind::Sync, PoolKind::Async] {
            let order = if round % 2 == 0 {
                [Setting::On, Setting::Off]
            } else {
                [Setting::Off, Setting::On]
            };
            for setting in order {
                zero(server.pid())?;
                zero(client.pid())?;
                client.run(pool, setting)?;
                let server_ir = dump(dir, "server", server.pid())?;
                let client_ir = dump(dir, "client", client.pid())?;
                counts.push(Count {
                    round,
                    pool,
                    setting,
                    client: client_ir as f64 / STATEMENTS as f64,
                    server: server_ir as f64 / STATEMENTS as f64,
                });
            }
        }
    }
    drop(client);
    drop(server);
    Ok(InstructionReport { counts, valgrind })
}

fn control(args: &[&str], pid: u32) -> Result<(), String> {
    let out = Command::new("callgrind_control")
        .args(args)
        .arg(pid.to_string())
        .output()
        .map_err(|e| format!("callgrind_control: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "callgrind_control {args:?} {pid}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn zero(pid: u32) -> Result<(), String> {
    control(&["-z"], pid)
}

/// Dumps `pid`'s counters and reads the total from the newest dump.
fn dump(dir: &Path, name: &str, pid: u32) -> Result<u64, String> {
    control(&["-d"], pid)?;
    let newest = newest_dump(dir, &format!("{name}.{pid}."))?;
    let text =
        std::fs::read_to_string(&newest).map_err(|e| format!("{}: {e}", newest.display()))?;
    text.lines()
        .find_map(|l| l.strip_prefix("summary:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("{}: no summary line", newest.display()))
}

/// The dump `prefix<N>` with the greatest `N`.
fn newest_dump(dir: &Path, prefix: &str) -> Result<PathBuf, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n: u64 = name.strip_prefix(prefix)?.parse().ok()?;
            Some((n, e.path()))
        })
        .max_by_key(|(n, _)| *n)
        .map(|(_, p)| p)
        .ok_or_else(|| format!("no callgrind dump {prefix}* in {}", dir.display()))
}

/// The client process, under callgrind, driven line by line.
struct Client {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Client {
    fn spawn(dir: &Path, url: &str) -> Result<Client, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut wrapper = callgrind(dir, "client");
        wrapper.push("--collect-atstart=no".into());
        wrapper.push(format!("--toggle-collect={CLIENT_COUNTS}"));
        let mut child = Command::new(&wrapper[0])
            .args(&wrapper[1..])
            .arg(exe)
            .args(["instructions-client", url])
            // The connection oracle stays out: it is no part of a pool's cost.
            .env_remove("LD_PRELOAD")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start the client under callgrind: {e}"))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut c = Client {
            child,
            stdin,
            stdout,
        };
        c.expect("ready")?;
        Ok(c)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn expect(&mut self, word: &str) -> Result<(), String> {
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .map_err(|e| format!("the client: {e}"))?;
        if line.trim() == word {
            Ok(())
        } else {
            Err(format!("the client said {:?}, not {word:?}", line.trim()))
        }
    }

    fn run(&mut self, pool: PoolKind, setting: Setting) -> Result<(), String> {
        writeln!(self.stdin, "{} {}", pool_word(pool), setting_word(setting))
            .and_then(|()| self.stdin.flush())
            .map_err(|e| format!("the client: {e}"))?;
        self.expect("done")
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pool_word(p: PoolKind) -> &'static str {
    match p {
        PoolKind::Async => "async",
        PoolKind::Sync => "sync",
    }
}

fn setting_word(s: Setting) -> &'static str {
    match s {
        Setting::On => "on",
        Setting::Off | Setting::ServerOnly => "off",
    }
}

/// `bench instructions-client URL`: builds the four pools, says `ready`, then for each
/// line `POOL SETTING` runs [`STATEMENTS`] point selects and says `done`; ends at the
/// end of its input.
pub fn client_main(url: &str) -> Result<(), String> {
    let url = DatabaseUrl::parse(url).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let budget = || Budget::new(4, Duration::from_secs(30));
    // Nothing closes or pings an idle pool between its measurements (under valgrind a
    // measurement of the other pools takes seconds): no connects, no pings counted.
    let mut settings = PoolSettings::default();
    settings.idle_timeout = Duration::from_secs(3600);
    settings.validation_bypass = Duration::from_secs(3600);
    settings.keepalive = Duration::ZERO;
    let sync = |s| {
        SyncPool::builder(url.clone(), budget())
            .settings(settings)
            .statement_timeout(Setting::pool_timeout(s))
            .build()
    };
    // Built inside the runtime (the pool keeps its handle); the blocking pools are
    // used outside it, as a blocking caller must.
    let asynch = |s| {
        let _enter = rt.enter();
        AsyncPool::builder(url.clone(), budget())
            .settings(settings)
            .statement_timeout(Setting::pool_timeout(s))
            .build()
    };
    let sync_pools = [sync(Setting::On), sync(Setting::Off)];
    let async_pools = [asynch(Setting::On), asynch(Setting::Off)];
    // One statement each first: the connection opens, and the prepared statement is
    // cached, before anything is counted.
    for p in &sync_pools {
        select_sync(p, 1)?;
    }
    for p in &async_pools {
        rt.block_on(crate::runs::ours_select(p.clone(), 1))
            .map_err(|e| e.to_string())?;
    }
    let mut out = std::io::stdout();
    let say = |out: &mut std::io::Stdout, w: &str| {
        writeln!(out, "{w}")
            .and_then(|()| out.flush())
            .map_err(|e| e.to_string())
    };
    say(&mut out, "ready")?;
    for line in std::io::stdin().lock().lines() {
        let line = line.map_err(|e| e.to_string())?;
        let mut words = line.split_whitespace();
        let (pool, setting) = (words.next(), words.next());
        let i = usize::from(setting != Some("on"));
        match pool {
            Some("sync") => phase(|id| select_sync(&sync_pools[i], id))?,
            Some("async") => phase(|id| {
                rt.block_on(crate::runs::ours_select(async_pools[i].clone(), id))
                    .map_err(|e| e.to_string())
            })?,
            _ => return Err(format!("unknown command {line:?}")),
        }
        say(&mut out, "done")?;
    }
    Ok(())
}

/// The counted part of a measurement: [`STATEMENTS`] calls of `statement`, the same
/// row ids every time. The client counts only inside this function (the name is in
/// [`CLIENT_COUNTS`]), so its other threads' timed work (the budget's controller, the
/// pools' housekeeping) is left out, as the server's background threads are.
#[inline(never)]
fn phase(mut statement: impl FnMut(i64) -> Result<(), String>) -> Result<(), String> {
    let mut rng = seeded_rng::Rng::new(0x5EED);
    for _ in 0..STATEMENTS {
        statement(crate::measure::next_id(&mut rng, ROWS))?;
    }
    Ok(())
}

fn select_sync(pool: &SyncPool, id: i64) -> Result<(), String> {
    let mut c = pool.get().map_err(|e| e.to_string())?;
    c.fetch_one::<String>(SQL, (id,))
        .map(drop)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::newest_dump;

    #[test]
    fn the_newest_dump_is_the_one_with_the_greatest_number_not_the_longest_name() {
        let dir = std::env::temp_dir().join(format!("bench-dumps-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in [
            "server.7.9",
            "server.7.10",
            "server.8.11",
            "client.7.12",
            "server.7",
        ] {
            std::fs::write(dir.join(name), "").unwrap();
        }
        let newest = newest_dump(&dir, "server.7.");
        let missing = newest_dump(&dir, "server.9.");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(newest.unwrap().file_name().unwrap(), "server.7.10");
        assert!(
            missing
                .unwrap_err()
                .contains("no callgrind dump server.9.*")
        );
    }
}
