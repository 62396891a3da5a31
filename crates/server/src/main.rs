//! `server [serve]` runs the game server; `server token <player-id>` prints a player's
//! token. Flags and environment variables: `server --help`.

use std::process::ExitCode;

use server::cli::{Cli, Command};
use server::settings::{Settings, resolve_secret};
use server::{Application, auth::TokenKey, memory, shutdown, telemetry};

fn main() -> ExitCode {
    let cli = match Cli::try_parse_args(std::env::args_os()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let env = |name: &str| std::env::var(name).ok();
    match cli.command() {
        Command::Token { player_id } => match resolve_secret(&cli.flags, env) {
            Ok(secret) => {
                println!("{}", TokenKey::new(&secret).mint(player_id));
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        Command::Serve => {
            let tuning = memory::tune_allocator();
            telemetry::init();
            match tuning {
                memory::Tuning::Applied => tracing::info!(
                    "malloc: mmap threshold fixed at {} KiB",
                    memory::MMAP_THRESHOLD / 1024
                ),
                memory::Tuning::LeftToEnvironment => {
                    tracing::info!("malloc: mmap threshold left to MALLOC_MMAP_THRESHOLD_")
                }
                memory::Tuning::Refused => {
                    tracing::warn!(
                        "malloc: glibc refused M_MMAP_THRESHOLD; RSS may grow under load"
                    )
                }
                memory::Tuning::NotGlibc => {}
            }
            let settings = match Settings::resolve(&cli.flags, env) {
                Ok(s) => s,
                Err(e) => return fail(&e),
            };
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return fail(&e),
            };
            match runtime.block_on(serve(settings)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&*e),
            }
        }
    }
}

async fn serve(settings: Settings) -> Result<(), Box<dyn std::error::Error>> {
    let app = Application::build(settings).await?;
    let handle = app.shutdown_handle();
    tokio::spawn(async move {
        let signal = shutdown::os_signal().await;
        tracing::info!("{signal} received");
        handle.trigger();
    });
    app.run_until_stopped().await?;
    Ok(())
}

fn fail(e: &dyn std::error::Error) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::FAILURE
}
