//! The ceiling of an HTTP layer: rouille's own server (tiny_http) answering `{"status":"ok"}`
//! with as many threads as the server's default `WORKERS`, no token, no database.
//! scripts/bench.sh runs it (`cargo bench --bench hello`) and drives it with wrk beside the
//! API's own `GET /health`, which goes through the API's connection layer, a worker, the
//! router and the access log.
//!
//! Listens on 127.0.0.1:$HELLO_PORT and prints `listening` once bound; runs until killed.

#[allow(clippy::print_stdout)]
fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let port = std::env::var("HELLO_PORT").unwrap_or_else(|_| "18600".to_owned());
    let server = rouille::Server::new(format!("127.0.0.1:{port}"), |_request| {
        rouille::Response::from_data("application/json", &b"{\"status\":\"ok\"}"[..])
    })?
    .pool_size(32);
    println!("listening");
    server.run();
    Ok(())
}
