//! The `todo-api` binary: configuration, logging, `todo_api::start`, and a clean stop on
//! SIGTERM or SIGINT (stop accepting, finish the requests in flight, close the pool, exit 0).
//! `todo-api healthcheck` asks a running server's `/health` instead (exit 0 when it answers 200).

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use signal_hook::consts::{SIGINT, SIGTERM};
use todo_api::config::Config;
use todo_api::http;

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if std::env::args().nth(1).as_deref() == Some("healthcheck") {
        let healthy = config.local_address().is_some_and(todo_api::health::probe);
        return if healthy { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    }
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGTERM, SIGINT] {
        if let Err(e) = signal_hook::flag::register(signal, Arc::clone(&stop)) {
            log::error!("cannot handle signal {signal}: {e}");
            return ExitCode::FAILURE;
        }
    }
    let running = match todo_api::start(&config, http::dispatch) {
        Ok(running) => running,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
    log::info!("stopping: finishing the requests in flight");
    running.stop();
    log::info!("stopped");
    ExitCode::SUCCESS
}
