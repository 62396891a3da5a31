//! Tests of the harness itself: real servers, real processes.

use std::io::Read;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mariadb_harness::{Server, ServerOptions, oracle};

/// State letter of `pid` from /proc (`None` if gone). A zombie ("Z") is dead.
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

fn alive(pid: u32) -> bool {
    matches!(proc_state(pid), Some(s) if s != 'Z' && s != 'X')
}

/// Runs the `mariadb` client over TCP as `user` and returns (success, stdout, stderr).
fn tcp_client(server: &Server, user: &str, password: &str, sql: &str) -> (bool, String, String) {
    let mut command = Command::new("mariadb");
    command
        .arg("--no-defaults")
        .arg("--protocol=tcp")
        .arg("-h127.0.0.1")
        .arg(format!("-P{}", server.port()))
        .arg(format!("-u{user}"))
        .args(["--batch", "--skip-column-names", "-e", sql])
        .stdin(Stdio::null());
    if !password.is_empty() {
        command.arg(format!("-p{password}"));
    }
    let out = command.output().expect("run mariadb client");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn two_servers_start_concurrently() {
    let a = std::thread::spawn(|| Server::start(ServerOptions::default()));
    let b = std::thread::spawn(|| Server::start(ServerOptions::default()));
    let a = a.join().unwrap().expect("server a");
    let b = b.join().unwrap().expect("server b");
    assert_ne!(a.port(), b.port());
    assert_ne!(a.port(), 3306);
    assert_ne!(a.socket_path(), b.socket_path());
    for server in [&a, &b] {
        assert_eq!(server.sql("SELECT 1").unwrap().trim(), "1");
        assert_eq!(
            server.sql("SELECT @@port").unwrap().trim(),
            server.port().to_string()
        );
        assert_eq!(
            server.sql("SELECT @@character_set_server").unwrap().trim(),
            "utf8mb4"
        );
        // A private tmpdir: each mariadbd start wipes `#sql*` files in its tmpdir.
        let tmpdir = server.sql("SELECT @@tmpdir").unwrap();
        assert!(tmpdir.contains("mariadb-harness/run/"), "{tmpdir}");
    }
    let datadir = a.datadir().to_path_buf();
    let pid = a.pid();
    drop(a);
    assert!(!datadir.exists(), "drop removes the datadir");
    assert!(!alive(pid), "drop kills the server");
}

#[test]
fn create_database_gives_unique_valid_names() {
    let server = Server::shared();
    let one = server.create_database("orders").unwrap();
    let two = server.create_database("orders").unwrap();
    let odd = server.create_database("my-db.v2 ü").unwrap();
    let long = server.create_database(&"x".repeat(100)).unwrap();
    assert_ne!(one, two);
    assert!(one.starts_with("orders_"));
    assert!(odd.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    assert!(long.len() <= 64);
    let all = server.sql("SHOW DATABASES").unwrap();
    for name in [&one, &two, &odd, &long] {
        assert!(all.lines().any(|l| l == name), "{name} missing in {all}");
    }
    assert_eq!(
        server.app_url(&one),
        format!("mysql://app:app-secret@127.0.0.1:{}/{one}", server.port())
    );
    assert_eq!(
        server.root_url(&one),
        format!("mysql://root@127.0.0.1:{}/{one}", server.port())
    );
}

#[test]
fn stop_and_restart_keep_data_and_port() {
    let server = Server::start(ServerOptions::default()).unwrap();
    let db = server.create_database("restart").unwrap();
    server
        .sql(&format!(
            "CREATE TABLE `{db}`.t (id INT PRIMARY KEY); INSERT INTO `{db}`.t VALUES (1), (2)"
        ))
        .unwrap();
    let (port, old_pid) = (server.port(), server.pid());
    server.stop().unwrap();
    assert!(!alive(old_pid));
    assert!(TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err());
    assert!(server.sql("SELECT 1").is_err());
    assert!(server.stop().is_err(), "stopping twice is an error");

    server.restart_after_stop().unwrap();
    assert_eq!(server.port(), port);
    assert_ne!(server.pid(), old_pid);
    assert_eq!(
        server
            .sql(&format!("SELECT COUNT(*) FROM `{db}`.t"))
            .unwrap()
            .trim(),
        "2"
    );
    assert!(server.restart_after_stop().is_err(), "already running");
}

#[test]
fn options_are_applied_and_status_is_clean() {
    let server = Server::start(ServerOptions {
        max_connections: 17,
        extra_args: vec!["--wait-timeout=77".into()],
        // `env` sets a variable and runs mariadbd in its own process.
        wrapper: vec!["env".into(), "HARNESS_WRAPPED=yes".into()],
    })
    .unwrap();
    let environ = std::fs::read(format!("/proc/{}/environ", server.pid())).unwrap();
    assert!(
        environ
            .split(|b| *b == 0)
            .any(|v| v == b"HARNESS_WRAPPED=yes"),
        "mariadbd runs under the wrapper"
    );
    assert_eq!(server.max_connections(), 17);
    assert_eq!(server.sql("SELECT @@max_connections").unwrap().trim(), "17");
    assert_eq!(server.sql("SELECT @@wait_timeout").unwrap().trim(), "77");
    // The readiness probe logs in and quits properly: nothing counts as aborted.
    assert_eq!(server.global_status("Aborted_connects").unwrap(), 0);
    assert!(server.global_status("Max_used_connections").unwrap() >= 1);
    assert!(server.global_status("No_such_status").is_err());
}

#[test]
fn app_user_lacks_super_but_can_work() {
    let server = Server::shared();
    let db = server.create_database("app").unwrap();

    let (ok, out, err) = tcp_client(
        server,
        "app",
        "app-secret",
        &format!(
            "CREATE TABLE `{db}`.t (id INT); INSERT INTO `{db}`.t VALUES (7); \
             SELECT id FROM `{db}`.t; SELECT CURRENT_USER()"
        ),
    );
    assert!(ok, "app cannot work: {err}");
    assert_eq!(out, "7\napp@127.0.0.1\n");

    let (ok, _, err) = tcp_client(server, "app", "app-secret", "SET GLOBAL wait_timeout = 5");
    assert!(!ok, "app must not be able to SET GLOBAL");
    assert!(err.contains("SUPER") || err.contains("denied"), "{err}");

    let privs = server
        .sql("SELECT DISTINCT Super_priv FROM mysql.user WHERE User = 'app'")
        .unwrap();
    assert_eq!(privs.trim(), "N");
    let hosts = server
        .sql("SELECT Host FROM mysql.user WHERE User = 'app' ORDER BY Host")
        .unwrap();
    assert_eq!(hosts, "%\n127.0.0.1\nlocalhost\n");
    let grants = server.sql("SHOW GRANTS FOR 'app'@'%'").unwrap();
    assert!(!grants.contains("SUPER") && !grants.contains("ALL PRIVILEGES"));

    let roots = server
        .sql("SELECT Host FROM mysql.user WHERE User = 'root' ORDER BY Host")
        .unwrap();
    assert_eq!(roots, "127.0.0.1\n::1\nlocalhost\n");
    let log = std::fs::read_to_string(server.datadir().join("error.log")).unwrap();
    assert!(
        !log.contains("ignored in --skip-name-resolve mode"),
        "{log}"
    );

    // Root over TCP with an empty password.
    let (ok, out, err) = tcp_client(server, "root", "", "SELECT CURRENT_USER()");
    assert!(ok, "root over TCP: {err}");
    assert_eq!(out.trim(), "root@127.0.0.1");
}

#[test]
fn server_survives_the_thread_that_started_it() {
    let server = std::thread::spawn(|| Server::start(ServerOptions::default()))
        .join()
        .unwrap()
        .unwrap();
    // PDEATHSIG would fire right away if the starting thread were the parent.
    std::thread::sleep(Duration::from_millis(500));
    assert!(alive(server.pid()));
    assert_eq!(server.sql("SELECT 1").unwrap().trim(), "1");
}

/// Helper for `server_dies_with_its_process`: only acts in the child process.
#[test]
fn leak_server_child() {
    if std::env::var_os("HARNESS_LEAK_CHILD").is_none() {
        return;
    }
    let shared = Server::shared();
    println!("SHARED_PID={}", shared.pid());
    println!("SHARED_DIR={}", shared.datadir().display());
    let leaked = Server::start(ServerOptions::default()).unwrap();
    println!("LEAKED_PID={}", leaked.pid());
    std::mem::forget(leaked);
    // Neither server is dropped; the process now exits.
}

#[test]
fn server_dies_with_its_process() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "leak_server_child", "--nocapture"])
        .env("HARNESS_LEAK_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let value = |key: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in child output: {stdout}"))
            .to_string()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    for key in ["SHARED_PID=", "LEAKED_PID="] {
        let pid: u32 = value(key).parse().unwrap();
        while alive(pid) {
            assert!(
                Instant::now() < deadline,
                "mariadbd {pid} outlived its process"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // The shared server's files are removed at exit.
    assert!(!std::path::Path::new(&value("SHARED_DIR=")).exists());
}

#[test]
fn freeze_and_resume() {
    let server = Server::start(ServerOptions::default()).unwrap();
    server.freeze().unwrap();
    assert_eq!(
        proc_state(server.pid()),
        Some('T'),
        "stopped once freeze returns"
    );
    // The kernel still accepts the TCP connection, but no greeting arrives.
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, server.port())).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(stream.read(&mut [0u8; 4]).is_err());
    server.resume().unwrap();
    assert_eq!(server.sql("SELECT 1").unwrap().trim(), "1");
    drop(stream);

    // A paused server can still be stopped.
    server.pause().unwrap();
    server.stop().unwrap();
    assert!(server.pause().is_err());
    assert!(server.freeze().is_err());
}

#[test]
fn oracle_counts_connections_exactly() {
    if !oracle::is_active() {
        let out = oracle::rerun_under_shim("oracle_counts_connections_exactly").unwrap();
        assert!(out.status.success());
        return;
    }
    let server = Server::start(ServerOptions::default()).unwrap();
    oracle::watch(server.port(), Some(server.socket_path()));
    oracle::reset_max();
    assert_eq!((oracle::current(), oracle::max()), (0, 0));

    let other = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let unrelated = TcpStream::connect(other.local_addr().unwrap()).unwrap();
    assert_eq!(oracle::current(), 0, "another port is not counted");

    let streams: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect((Ipv4Addr::LOCALHOST, server.port())).unwrap())
        .collect();
    assert_eq!((oracle::current(), oracle::max()), (3, 3));
    drop(streams);
    assert_eq!((oracle::current(), oracle::max()), (0, 3));

    let unix = UnixStream::connect(server.socket_path()).unwrap();
    assert_eq!(oracle::current(), 1, "the watched unix socket is counted");
    drop(unix);
    assert_eq!(oracle::current(), 0);

    // Harness-spawned processes do not carry the shim.
    assert_eq!(server.sql("SELECT 1").unwrap().trim(), "1");
    assert_eq!(oracle::current(), 0);

    oracle::reset_max();
    assert_eq!(oracle::max(), 0);
    assert_eq!(oracle::untracked(), 0);
    drop(unrelated);
}

#[test]
fn oracle_is_exact_under_concurrency() {
    if !oracle::is_active() {
        let out = oracle::rerun_under_shim("oracle_is_exact_under_concurrency").unwrap();
        assert!(out.status.success());
        return;
    }
    // A plain listener stands in for the server: the shim only looks at the port.
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            drop(stream);
        }
    });
    oracle::watch(addr.port(), None);
    const THREADS: i64 = 8;
    let workers: Vec<_> = (0..THREADS)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..100 {
                    drop(TcpStream::connect(addr).unwrap());
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    assert_eq!(oracle::current(), 0);
    assert!((1..=THREADS).contains(&oracle::max()), "{}", oracle::max());
}

#[test]
fn rerun_rejects_unknown_test_names() {
    if oracle::is_active() {
        return;
    }
    let err = oracle::rerun_under_shim("no_such_test").unwrap_err();
    assert!(err.to_string().contains("did not run exactly one test"));
}

#[test]
fn start_time() {
    // Make sure the template exists so that only the copy + start is timed.
    let _ = Server::shared();
    let mut times: Vec<Duration> = (0..5)
        .map(|_| {
            let started = Instant::now();
            let server = Server::start(ServerOptions::default()).unwrap();
            let took = started.elapsed();
            drop(server);
            took
        })
        .collect();
    times.sort();
    println!(
        "Server::start: median {:?} (min {:?}, max {:?})",
        times[2], times[0], times[4]
    );
}

#[test]
fn a_max_connections_below_mariadbs_least_is_refused_not_quietly_raised() {
    // MariaDB raises `--max-connections=2` to 10 without a word: a test of two slots
    // would run with ten.
    let Err(err) = Server::start(ServerOptions {
        max_connections: 9,
        ..Default::default()
    }) else {
        panic!("max_connections 9 was taken");
    };
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("max_connections 9"), "{err}");
    // The least is taken as it is.
    let server = Server::start(ServerOptions {
        max_connections: mariadb_harness::MIN_MAX_CONNECTIONS,
        ..Default::default()
    })
    .unwrap();
    assert_eq!(server.sql("SELECT @@max_connections").unwrap().trim(), "10");
}

#[test]
fn held_slots_count_against_max_connections_until_dropped() {
    // Arrange: MariaDB's least max_connections.
    let server = Server::start(ServerOptions {
        max_connections: mariadb_harness::MIN_MAX_CONNECTIONS,
        ..Default::default()
    })
    .unwrap();
    let connected = || server.global_status("Threads_connected").unwrap();
    let before = connected();

    // Act: hold 7 of the 10.
    let held = server.hold_slots(7).unwrap();

    // Assert: the server counts them (beside the probe's own session), then lets go.
    assert_eq!(held.len(), 7);
    assert_eq!(connected(), before + 7);
    drop(held);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while connected() > before && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(connected(), before);
}
